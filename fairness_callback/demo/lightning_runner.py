"""The demo's training loop on PyTorch Lightning."""

from __future__ import annotations

import os

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from ..integrations.lightning import LightningFairnessCallback
from .run import DemoConfig, DemoParts

__all__ = [
    "DemoModule",
    "train_lightning",
]


class DemoModule(pl.LightningModule):
    """A causal LM at ``self.model`` (what the callback probes), AdamW with linear warm-up."""

    def __init__(self, model: torch.nn.Module, tokenizer, lr: float, lr_warmup: int) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.lr = lr
        self.lr_warmup = lr_warmup

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss, prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / self.lr_warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


def train_lightning(config: DemoConfig, parts: DemoParts) -> LightningFairnessCallback:
    # __post_init__ filled these from MODEL_DEFAULTS.
    assert config.probe_every is not None and config.lr is not None and config.lr_warmup is not None
    pl.seed_everything(config.seed, verbose=False)
    callback = LightningFairnessCallback(
        every_n_steps=config.probe_every,
        **parts.callback_probes(),
        early_stopping=parts.early_stopping,
        history_path=parts.history_path,
    )
    loggers = [TensorBoardLogger(save_dir=str(config.out), name="tensorboard", version="lightning")]
    if config.wandb:
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_MODE", "offline")
        loggers.append(WandbLogger(project="fairness-callback-demo", save_dir=str(config.out)))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=config.steps,
        logger=loggers,
        callbacks=[callback, TQDMProgressBar(refresh_rate=20)],
        val_check_interval=config.probe_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=config.probe_every // 2 or 1,
        default_root_dir=str(config.out),
    )
    train = torch.utils.data.DataLoader(parts.train, batch_size=config.batch_size, shuffle=False)
    held_out = torch.utils.data.DataLoader(parts.held_out, batch_size=64)
    trainer.fit(DemoModule(parts.model, parts.tokenizer, config.lr, config.lr_warmup), train, held_out)
    return callback
