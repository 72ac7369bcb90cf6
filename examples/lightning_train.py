"""Train a small GPT-NeoX with PyTorch Lightning while LightningFairnessCallback watches its gender bias.

    python examples/lightning_train.py [--output-dir runs/lightning_example] [--max-steps 300] [--probe-every 25]

Everything is built on the spot, nothing is downloaded: a byte-level BPE tokenizer, a randomly
initialised GPT-NeoX (Pythia's architecture, from a config) and a training text of the built-in
probe set's pro-stereotyped sentences, so that the model has a stereotype to pick up. It trains
on CPU for about a minute; the callback probes every ``--probe-every`` optimizer steps, logs to
TensorBoard, writes the history file, and stops training early if the JSD-P gap keeps growing
while ``val_loss`` holds.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from fairness_callback import FairnessEarlyStopping, FairnessProbe, ProbeSet
from fairness_callback.integrations.lightning import LightningFairnessCallback
from fairness_callback.demo.tiny_model import TokenBlocks, probe_texts, tiny_gpt_neox, train_bpe_tokenizer


class LanguageModel(pl.LightningModule):
    """A causal LM at ``self.model`` (what the callback probes) and its tokenizer; AdamW with warm-up."""

    def __init__(self, model: torch.nn.Module, tokenizer, lr: float, warmup_steps: int) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.lr = lr
        self.warmup_steps = warmup_steps

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / self.warmup_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/lightning_example", help="history file and TensorBoard logs go here")
    parser.add_argument("--max-steps", type=int, default=300, help="optimizer steps (300 take about a minute on CPU)")
    parser.add_argument("--probe-every", type=int, default=25, help="probe (and validate) every this many steps")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)

    pl.seed_everything(0, verbose=False)
    sentences = [s.text for s in ProbeSet.builtin() if s.stereotype == "pro"]
    random.Random(0).shuffle(sentences)
    held_out = len(sentences) // 10
    tokenizer = train_bpe_tokenizer(probe_texts() + sentences, vocab_size=2000)
    model = tiny_gpt_neox(len(tokenizer), hidden_size=128, num_layers=4, seed=0)

    callback = LightningFairnessCallback(
        every_n_steps=args.probe_every,
        # One option-order seed instead of five: 1,120 prompts, about a second per probe here.
        probe=FairnessProbe(tokenizer, seeds=(0,)),
        # The first probes only see a model that answers the same option to every prompt.
        early_stopping=FairnessEarlyStopping(patience=3, warmup_steps=2 * args.probe_every),
        history_path=out / "fairness_history.jsonl",
    )
    logger = TensorBoardLogger(save_dir=str(out), name="tensorboard")
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=args.max_steps, logger=logger, callbacks=[callback],
        # Validate on the probe's schedule (counted in batches: no gradient accumulation here).
        val_check_interval=args.probe_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        log_every_n_steps=min(args.probe_every, 10), enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(out),
    )
    train = torch.utils.data.DataLoader(TokenBlocks(tokenizer, sentences[held_out:], length=32), batch_size=16, shuffle=True)
    val = torch.utils.data.DataLoader(TokenBlocks(tokenizer, sentences[:held_out], length=32), batch_size=64)
    trainer.fit(LanguageModel(model, tokenizer, lr=2e-3, warmup_steps=max(1, args.max_steps // 10)), train, val)

    last = callback.last_metrics
    print(f"\ntrained {trainer.global_step} steps; last probe: JSD-P gap (female - male) {last['jsdp/gap']:+.4f}, "
          f"Average Rank gap {last['ar/gap']:+.1f}")
    if callback.stopped_reason is not None:
        print(f"fairness early stopping fired: {callback.tracker.stop_message}")
    print(f"probe history (one JSON line per probe): {callback.tracker.history_path}")
    print(f"TensorBoard logs: {logger.log_dir}  (tensorboard --logdir {Path(logger.log_dir).parent})")


if __name__ == "__main__":
    main()
