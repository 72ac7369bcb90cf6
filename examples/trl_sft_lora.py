"""Fine-tune with TRL's SFTTrainer and a LoRA adapter while HFFairnessCallback watches the gender bias.

    python examples/trl_sft_lora.py [--output-dir runs/trl_sft_lora] [--max-steps 60] [--probe-every 20]

Nothing is downloaded: a tiny random Llama and a byte-level BPE tokenizer are built on the spot,
and the training text is the built-in probe set's pro-stereotyped sentences. The callback probes
the model with its adapter active, on the same fast path as the bare model (the history's
``prefix_sharing`` column says which path ran). With a real model, pass its name to
``AutoModelForCausalLM.from_pretrained`` instead; the two lines marked ``# fairness`` are all
that changes in a TRL script.
"""

from __future__ import annotations

import argparse
import random

from datasets import Dataset
from peft import LoraConfig
from transformers import LlamaConfig, LlamaForCausalLM
from trl import SFTConfig, SFTTrainer

from fairness_callback import FairnessEarlyStopping, FairnessProbe, HFFairnessCallback, ProbeSet  # fairness
from fairness_callback.demo.tiny_model import probe_texts, train_bpe_tokenizer


def main(argv: list[str] | None = None) -> SFTTrainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/trl_sft_lora")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--probe-every", type=int, default=20)
    args = parser.parse_args(argv)

    sentences = [s.text for s in ProbeSet.builtin() if s.stereotype == "pro"]
    random.Random(0).shuffle(sentences)
    tokenizer = train_bpe_tokenizer(probe_texts() + sentences, vocab_size=2000)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id))
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=8,
                       learning_rate=2e-3, logging_steps=args.probe_every, save_strategy="no", report_to=["tensorboard"],
                       use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0, max_length=64),
        train_dataset=Dataset.from_dict({"text": sentences}),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
        callbacks=[HFFairnessCallback(  # fairness
            every_n_steps=args.probe_every, probe=FairnessProbe(tokenizer, seeds=(0,), normalize="options"),
            early_stopping=FairnessEarlyStopping(patience=2))],
    )
    trainer.train()
    callback = next(c for c in trainer.callback_handler.callbacks if isinstance(c, HFFairnessCallback))
    print(f"trained {trainer.state.global_step} steps with a LoRA adapter; last probe: JSD-P gap (female - male) "
          f"{callback.last_metrics['jsdp/gap']:+.4f}")
    print(callback.tracker.stop_message or "fairness early stopping did not fire")
    print(f"probe history: {callback.tracker.history_path}")
    return trainer


if __name__ == "__main__":
    main()
