"""A stock Lightning training script that knows nothing of fairness_callback (run by
tests/integrations/test_lightning_entry.py as a subprocess).

``python stock_lightning.py TOKENIZER_DIR OUT [--package pytorch_lightning] [--cli] [--by-hand]``:
a tiny GPT-NeoX language model over the tokenizer saved in TOKENIZER_DIR, 4 optimizer steps,
validation every 2, logs under OUT. ``--cli`` builds the run with ``LightningCLI`` (its
arguments after ``--``); ``--by-hand`` is the one line a user adds in code (the only import of the
package, for the test of a callback added both ways). Writes ``OUT/report.json``: the trainer's
callbacks' class names, its log_dir, its global_step, and whether ``fairness_callback`` was imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("tokenizer")
parser.add_argument("out")
parser.add_argument("--package", default="lightning.pytorch")
parser.add_argument("--cli", action="store_true")
parser.add_argument("--by-hand", action="store_true")
args, rest = parser.parse_known_args()
rest = [a for a in rest if a != "--"]
pl = importlib.import_module(args.package)
TOKENIZER = AutoTokenizer.from_pretrained(args.tokenizer)
TEXTS = ["The developer argued with the designer because she did not like the design."] * 32


class TinyLM(pl.LightningModule):
    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        self.lr = lr
        self.tokenizer = TOKENIZER
        torch.manual_seed(0)
        config = GPTNeoXConfig(
            vocab_size=len(TOKENIZER), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
        self.model = GPTNeoXForCausalLM(config)

    def _batches(self):
        ids = TOKENIZER(TEXTS, return_tensors="pt")["input_ids"]
        data = [{"input_ids": row, "labels": row} for row in ids]
        return torch.utils.data.DataLoader(data, batch_size=4)

    def training_step(self, batch, batch_idx):
        return self.model(**batch).loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return self._batches()

    def val_dataloader(self):
        return self._batches()


options = dict(
    max_steps=4,
    limit_val_batches=1,
    val_check_interval=2,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    default_root_dir=args.out,
    accelerator="cpu",
)
if args.cli:
    from lightning.pytorch.cli import LightningCLI

    cli = LightningCLI(TinyLM, run=False, trainer_defaults=options, args=rest)
    trainer, module = cli.trainer, cli.model
else:
    callbacks = []
    if args.by_hand:
        from fairness_callback.integrations.lightning import LightningFairnessCallback

        callbacks.append(LightningFairnessCallback(every_n_steps=2))
    trainer, module = pl.Trainer(callbacks=callbacks, **options), TinyLM()
trainer.fit(module)
report = {
    "callbacks": [type(c).__name__ for c in trainer.callbacks],
    "log_dir": trainer.log_dir,
    "global_step": trainer.global_step,
    "imported": "fairness_callback" in sys.modules,
}
Path(args.out, "report.json").write_text(json.dumps(report))
