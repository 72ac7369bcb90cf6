"""The demo's training loop on the Hugging Face Trainer."""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from ..integrations.hf import HFFairnessCallback
from .run import DemoConfig, DemoParts

__all__ = [
    "InOrderTrainer",
    "train_hf",
]


class InOrderTrainer(Trainer):
    """The Trainer on the training lines in their order (Lightning's runner does not shuffle either):
    the lines of step ``s`` are the demo's batch ``s``, so the corpus drifts at ``skew_from_step``."""

    def _get_train_sampler(self, *args: Any, **kwargs: Any) -> torch.utils.data.Sampler:
        assert self.train_dataset is not None
        return torch.utils.data.SequentialSampler(self.train_dataset)


def train_hf(config: DemoConfig, parts: DemoParts) -> HFFairnessCallback:
    assert config.probe_every is not None  # __post_init__ filled it from MODEL_DEFAULTS
    callback = HFFairnessCallback(
        every_n_steps=config.probe_every,
        **parts.callback_probes(),
        early_stopping=parts.early_stopping,
        history_path=parts.history_path,
    )
    report_to = ["tensorboard"]
    if config.wandb:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(config.out))
        report_to.append("wandb")
    args = TrainingArguments(
        output_dir=str(config.out / "hf"),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=config.lr,
        warmup_steps=config.lr_warmup,
        lr_scheduler_type="constant_with_warmup",
        weight_decay=0.01,
        eval_strategy="steps",
        eval_steps=config.probe_every,
        logging_steps=config.probe_every // 2 or 1,
        save_strategy="no",
        report_to=report_to,
        use_cpu=True,
        seed=config.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = InOrderTrainer(
        model=parts.model,
        args=args,
        train_dataset=parts.train,
        eval_dataset=parts.held_out,
        processing_class=parts.tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    return callback
