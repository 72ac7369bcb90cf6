"""A training loop of your own (with accelerate) while FairnessTracker watches the gender bias.

    python examples/custom_loop.py [--output-dir runs/custom_loop] [--max-steps 300] [--probe-every 50]
    accelerate launch --multi_gpu --num_processes 2 examples/custom_loop.py ...   # 2 GPUs, DDP
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 examples/custom_loop.py ...  # 2 CPU processes

Nothing is downloaded: a byte-level BPE tokenizer, a random GPT-NeoX and a text of the built-in
probe set's pro-stereotyped sentences are built on the spot. The lines that are ours are marked
``# fairness``: build a tracker, ``start`` it, feed it the held-out loss, call ``step`` after
every optimizer step on every process, and stop when it says so.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from fairness_callback import FairnessEarlyStopping, FairnessTracker, FairnessProbe, ProbeSet
from fairness_callback.demo.tiny_model import TokenBlocks, probe_texts, tiny_gpt_neox, train_bpe_tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/custom_loop", help="history file and TensorBoard logs")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--probe-every", type=int, default=50, help="probe (and evaluate) every this many steps")
    parser.add_argument("--summary-json", help="write each process's last metrics to FILE.rank<R>.json (for tests)")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)

    accelerator = Accelerator()
    sentences = [s.text for s in ProbeSet.builtin() if s.stereotype == "pro"]
    random.Random(0).shuffle(sentences)
    tokenizer = train_bpe_tokenizer(probe_texts() + sentences, vocab_size=2000)  # deterministic: equal on every rank
    model = tiny_gpt_neox(len(tokenizer), hidden_size=64, num_layers=2, seed=0)
    held_out = TokenBlocks(tokenizer, sentences[:50], length=32)
    loader = DataLoader(TokenBlocks(tokenizer, sentences[50:], length=32), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    writer = SummaryWriter(out / "tensorboard") if accelerator.is_main_process else None
    tracker = FairnessTracker(  # fairness
        tokenizer=tokenizer, every_n_steps=args.probe_every,
        probe=FairnessProbe(tokenizer, seeds=(0,), normalize="options"),
        early_stopping=FairnessEarlyStopping(patience=3, warmup_steps=2 * args.probe_every),
        history_path=out / "fairness_history.jsonl", log=writer,
    )
    tracker.start(model)  # fairness: the step-0 probe

    step, outcome = 0, None
    while step < args.max_steps and not (outcome and outcome.should_stop):
        for batch in loader:
            model.train()
            accelerator.backward(model(**batch).loss)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step % args.probe_every == 0:
                tracker.update_loss({"val_loss": held_out_loss(model, held_out, accelerator.device)})  # fairness
            outcome = tracker.step(model, step)  # fairness: probes when due, on every process
            if outcome.should_stop or step >= args.max_steps:
                break

    if args.summary_json:
        summary = {"step": step, "last_metrics": tracker.last_metrics, "stopped": tracker.stop_message,
                   "run_id": tracker.run_id}
        Path(f"{args.summary_json}.rank{accelerator.process_index}.json").write_text(json.dumps(summary))
    if accelerator.is_main_process:
        writer.close()
        gap = tracker.last_metrics["jsdp/gap"]
        print(f"trained {step} steps; last probe: JSD-P gap (female - male) {gap:+.4f}")
        print(tracker.stop_message or "fairness early stopping did not fire")
        print(f"probe history: {tracker.history_path}; TensorBoard: {out / 'tensorboard'}")
    accelerator.end_training()


@torch.no_grad()
def held_out_loss(model: torch.nn.Module, data: TokenBlocks, device: torch.device) -> float:
    """Mean loss on the held-out blocks (every process computes the same value)."""
    was_training = model.training
    model.eval()
    losses = [model(**{k: v.unsqueeze(0).to(device) for k, v in data[i].items()}).loss for i in range(len(data))]
    model.train(was_training)
    return float(torch.stack(losses).mean())


if __name__ == "__main__":
    main()
