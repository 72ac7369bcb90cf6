"""PyTorch Lightning adapter: :class:`LightningFairnessCallback`, a ``lightning.pytorch.Callback``.

Hooks: ``setup`` builds the probe and picks the history file; ``on_train_start`` runs the
step-0 probe; ``on_train_batch_end`` probes once per optimizer step that is a multiple of
``every_n_steps`` (with gradient accumulation ``trainer.global_step`` only moves on optimizer
steps, and a batch that did not move it is not probed); ``on_validation_end`` reads the
held-out loss; ``state_dict`` / ``load_state_dict`` carry the early-stopping state through
checkpoints, under the callback's ``state_key``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import torch

from .._extras import require

require("lightning", "fairness_callback's Lightning callback")
# The imports below come after require(), so that without lightning the error says what to install (MissingExtraError).
import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger  # noqa: E402

from ..probe import FairnessProbe  # noqa: E402
from ..training.alerts import Alerts  # noqa: E402
from ..training.stopping import StopRule  # noqa: E402
from ._base import TrackerAdapter  # noqa: E402

__all__ = ["LightningFairnessCallback"]

#: The checkpoint key of this callback's state in 0.1.0 (Lightning's default: the class's name then).
OLD_STATE_KEY = "FairnessCallback"


class LightningFairnessCallback(TrackerAdapter, pl.Callback):
    """Probe the model's gender bias every N optimizer steps, log it, and stop when it grows.

    ``Trainer(callbacks=[LightningFairnessCallback(every_n_steps=200, early_stopping=FairnessEarlyStopping())])``.
    Metrics are sent to every attached logger (TensorBoard, W&B, CSV, ...) at
    ``trainer.global_step`` under ``fairness/`` (e.g. ``fairness/jsdp/gap``), and put in
    ``trainer.callback_metrics`` so the stock ``ModelCheckpoint`` / ``EarlyStopping`` can monitor them.

    Args:
        every_n_steps, probe, tokenizer, early_stopping, probe_at_start, history_path, on_error,
            log_all_metrics, probe_budget, probes, alerts: see :class:`~fairness_callback.integrations._base.TrackerAdapter`
            (documented in :class:`~fairness_callback.FairnessTracker`). Here the default probe is
            built from ``tokenizer``, else ``pl_module.tokenizer``, else
            ``trainer.datamodule.tokenizer``; the held-out loss is ``val_loss``; ``history_path``
            defaults to ``<trainer.log_dir>/fairness_history.jsonl`` (the logger's folder for this
            run, e.g. ``lightning_logs/version_3``), or ``<default_root_dir>/...`` without a logger;
            ``alerts`` go to the run of the trainer's ``WandbLogger`` when it has one.
        model_attr: attribute of the LightningModule that holds the causal LM (e.g. a Hugging Face
            model at ``self.model``); if the module has no such attribute, the LightningModule
            itself is called with ``input_ids`` / ``attention_mask``.
        name: see :class:`~fairness_callback.integrations._base.TrackerAdapter`.

    Attributes: see :class:`~fairness_callback.integrations._base.TrackerAdapter`.
    """

    framework = "lightning"
    loss_key = "val_loss"

    def __init__(
        self,
        every_n_steps: int = 500,
        probe: FairnessProbe | None = None,
        tokenizer: Any = None,
        early_stopping: StopRule | None = None,
        probe_at_start: bool = True,
        history_path: str | os.PathLike | None = None,
        on_error: Literal["warn", "raise"] = "warn",
        log_all_metrics: bool = False,
        probe_budget: float | None = None,
        probes: Mapping[str, FairnessProbe] | None = None,
        model_attr: str = "model",
        name: str | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        super().__init__(
            every_n_steps,
            probe,
            tokenizer,
            early_stopping,
            probe_at_start,
            history_path,
            on_error,
            log_all_metrics,
            probe_budget,
            probes,
            name,
            alerts,
        )
        self.model_attr = model_attr
        self._step_at_batch_start: int | None = None
        self._run_files: dict[str, Any] = {}  # the tokenizer and history file setup() found, for start()

    # -- hooks ------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = getattr(trainer, "datamodule", None)
        tokenizer = getattr(pl_module, "tokenizer", None) or getattr(datamodule, "tokenizer", None)
        # A run's files live where its logger puts them (trainer.log_dir: e.g. lightning_logs/version_N,
        # new for every fit; default_root_dir without a logger). It broadcasts: every rank is here.
        default_dir = trainer.log_dir or trainer.default_root_dir
        self._check_siblings(trainer.callbacks, default_dir)
        self._run_files = {"tokenizer": tokenizer, "default_history_path": self._default_history_path(default_dir)}
        if self.tracker.alerts is not None:
            # The run of the trainer's WandbLogger (its experiment is read when an alert is sent), else
            # the global wandb.run; looked up at every fit, so a reused callback never alerts an old run.
            wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
            self.tracker.alerts.use_wandb(wandb_loggers[0] if wandb_loggers else None)
        # Lightning restores a checkpoint's callback state (load_state_dict) after setup.
        self.tracker.reset()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("callbacks") or {}
        if self.state_key not in states and OLD_STATE_KEY in states:  # a checkpoint of 0.1.0
            self.load_state_dict(states[OLD_STATE_KEY])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(pl_module, self.model_attr, pl_module)
        autocast = trainer.precision_plugin.forward_context()
        self._act(trainer, self.tracker.start(model, trainer.global_step, autocast, **self._run_files))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        # A micro-batch that only accumulated gradients leaves global_step where it was; probing
        # there would probe step 0 before any update even with probe_at_start=False.
        stepped = trainer.global_step != self._step_at_batch_start
        if stepped and self.tracker.schedule.is_due(trainer.global_step):
            self._probe(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.tracker.update_loss(dict(trainer.callback_metrics))

    # -- helpers ----------------------------------------------------------------------------------
    def _probe(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(pl_module, self.model_attr, pl_module)
        self._act(trainer, self.tracker.probe_now(model, trainer.global_step, trainer.precision_plugin.forward_context()))

    def _act(self, trainer: pl.Trainer, outcome) -> None:
        """Log a probe's metrics to every logger and pass on its stop vote."""
        if outcome.metrics is not None:
            logged = self.tracker.metrics_log.select(outcome.metrics)
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=trainer.global_step)
            trainer.callback_metrics.update({key: torch.tensor(value) for key, value in logged.items()})
            self._write_layout_once(trainer)
        if outcome.should_stop:
            trainer.should_stop = True

    def _write_layout_once(self, trainer: pl.Trainer) -> None:
        if self._layout_written or trainer.global_rank != 0:
            return
        self._write_layout(logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger))
        self._layout_written = True  # tried once, on rank 0: a run without a TensorBoard logger gets none


def __getattr__(name: str) -> Any:
    if name == "FairnessCallback":  # its name in 0.1.0
        warnings.warn(
            "fairness_callback.integrations.lightning.FairnessCallback is now LightningFairnessCallback",
            DeprecationWarning,
            stacklevel=2,
        )
        return LightningFairnessCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
