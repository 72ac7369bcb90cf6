"""Train a small GPT-NeoX with the Hugging Face Trainer while HFFairnessCallback watches its gender bias.

    python examples/hf_trainer.py [--output-dir runs/hf_example] [--max-steps 300] [--probe-every 25]

Everything is built on the spot, nothing is downloaded: a byte-level BPE tokenizer, a randomly
initialised GPT-NeoX (Pythia's architecture) and a training text of the built-in probe set's
pro-stereotyped sentences, so that the model has a stereotype to pick up. It trains on CPU for
about a minute; the callback probes every ``--probe-every`` steps, logs to TensorBoard, writes
the history file, and stops training early if the JSD-P gap keeps growing while the held-out
loss holds.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from transformers import Trainer, TrainingArguments, default_data_collator
from transformers.integrations import TensorBoardCallback

from fairness_callback import FairnessEarlyStopping, FairnessProbe, ProbeSet
from fairness_callback.integrations.hf import HFFairnessCallback
from fairness_callback.demo.tiny_model import TokenBlocks, probe_texts, tiny_gpt_neox, train_bpe_tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/hf_example", help="the history file and TensorBoard logs go here")
    parser.add_argument("--max-steps", type=int, default=300, help="optimizer steps (300 take about a minute on CPU)")
    parser.add_argument("--probe-every", type=int, default=25, help="probe (and evaluate) every this many steps")
    args = parser.parse_args(argv)

    sentences = [s.text for s in ProbeSet.builtin() if s.stereotype == "pro"]
    random.Random(0).shuffle(sentences)
    held_out = len(sentences) // 10
    tokenizer = train_bpe_tokenizer(probe_texts() + sentences, vocab_size=2000)
    model = tiny_gpt_neox(len(tokenizer), hidden_size=128, num_layers=4, seed=0)

    callback = HFFairnessCallback(
        every_n_steps=args.probe_every,
        # One option-order seed instead of five: 1,120 prompts, a fraction of a second per probe here.
        # normalize="options": a model this small puts almost no probability on any option token,
        # so full-vocabulary JSD-P sits near 0.5 for every group; among the three options it moves.
        probe=FairnessProbe(tokenizer, seeds=(0,), normalize="options"),
        # The first probes only see a model that answers the same option to every prompt.
        early_stopping=FairnessEarlyStopping(patience=3, warmup_steps=2 * args.probe_every),
    )
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=16,
        learning_rate=2e-3,
        warmup_steps=args.max_steps // 10,
        eval_strategy="steps",
        eval_steps=args.probe_every,
        logging_steps=args.probe_every,
        save_strategy="no",
        report_to=["tensorboard"],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=TokenBlocks(tokenizer, sentences[held_out:], length=32),
        eval_dataset=TokenBlocks(tokenizer, sentences[:held_out], length=32),
        data_collator=default_data_collator,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()

    last = callback.last_metrics
    print(f"\ntrained {trainer.state.global_step} steps; last probe: JSD-P gap (female - male) {last['jsdp/gap']:+.4f}, "
          f"Average Rank gap {last['ar/gap']:+.1f}")
    if callback.stopped_reason is not None:
        print(f"fairness early stopping fired: {callback.tracker.stop_message}")
    tensorboard = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, TensorBoardCallback))
    print(f"probe history (one JSON line per probe): {callback.tracker.history_path}")
    print(f"TensorBoard logs: {tensorboard.logging_dir}  (tensorboard --logdir {Path(tensorboard.logging_dir).parent})")


if __name__ == "__main__":
    main()
