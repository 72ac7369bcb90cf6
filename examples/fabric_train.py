"""Train with Lightning Fabric while FairnessTracker watches the gender bias.

    python examples/fabric_train.py [--output-dir runs/fabric] [--devices 1] [--max-steps 300] [--probe-every 50]
    python examples/fabric_train.py --devices 2        # 2 CPU processes, DDP (Fabric launches them)

Nothing is downloaded. The tracker logs through ``fabric.log_dict`` (Fabric's TensorBoard logger,
rank 0 only), so its metrics sit beside the loop's own. The lines that are ours are marked
``# fairness``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from fairness_callback import FairnessEarlyStopping, FairnessTracker, FairnessProbe, ProbeSet
from fairness_callback.demo.tiny_model import TokenBlocks, probe_texts, tiny_gpt_neox, train_bpe_tokenizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/fabric")
    parser.add_argument("--devices", type=int, default=1, help="CPU processes (DDP when > 1)")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--probe-every", type=int, default=50)
    parser.add_argument("--summary-json", help="write each process's last metrics to FILE.rank<R>.json (for tests)")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)

    fabric = Fabric(accelerator="cpu", devices=args.devices, strategy="ddp" if args.devices > 1 else "auto",
                    loggers=TensorBoardLogger(out, name="tensorboard"))
    fabric.launch()
    sentences = [s.text for s in ProbeSet.builtin() if s.stereotype == "pro"]
    random.Random(0).shuffle(sentences)
    tokenizer = train_bpe_tokenizer(probe_texts() + sentences, vocab_size=2000)
    fabric.seed_everything(0)
    model = tiny_gpt_neox(len(tokenizer), hidden_size=64, num_layers=2, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model, optimizer = fabric.setup(model, optimizer)
    loader = fabric.setup_dataloaders(DataLoader(TokenBlocks(tokenizer, sentences[50:], length=32), batch_size=16,
                                                 shuffle=True))
    held_out = TokenBlocks(tokenizer, sentences[:50], length=32)

    tracker = FairnessTracker(  # fairness
        tokenizer=tokenizer, every_n_steps=args.probe_every,
        probe=FairnessProbe(tokenizer, seeds=(0,), normalize="options"),
        early_stopping=FairnessEarlyStopping(patience=3, warmup_steps=2 * args.probe_every),
        history_path=out / "fairness_history.jsonl", log=fabric.log_dict,
    )
    tracker.start(model)  # fairness: the step-0 probe

    step, stop = 0, False
    while step < args.max_steps and not stop:
        for batch in loader:
            model.train()
            loss = model(**batch).loss
            fabric.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            fabric.log_dict({"train/loss": float(loss)}, step=step)
            if step % args.probe_every == 0:
                tracker.update_loss({"val_loss": held_out_loss(model, held_out, fabric.device)})  # fairness
            stop = tracker.step(model, step).should_stop  # fairness: on every process
            if stop or step >= args.max_steps:
                break

    if args.summary_json:
        summary = {"step": step, "last_metrics": tracker.last_metrics, "stopped": tracker.stop_message,
                   "run_id": tracker.run_id}
        Path(f"{args.summary_json}.rank{fabric.global_rank}.json").write_text(json.dumps(summary))
    if fabric.is_global_zero:
        print(f"trained {step} steps; last probe: JSD-P gap (female - male) {tracker.last_metrics['jsdp/gap']:+.4f}")
        print(tracker.stop_message or "fairness early stopping did not fire")
        print(f"probe history: {tracker.history_path}; TensorBoard: {fabric.logger.log_dir}")
    fabric.logger.finalize("success")


@torch.no_grad()
def held_out_loss(model: torch.nn.Module, data: TokenBlocks, device: torch.device) -> float:
    """Mean loss on the held-out blocks (every process computes the same value)."""
    model.eval()
    losses = [model(**{k: v.unsqueeze(0).to(device) for k, v in data[i].items()}).loss for i in range(len(data))]
    return float(torch.stack(losses).mean())


if __name__ == "__main__":
    main()
