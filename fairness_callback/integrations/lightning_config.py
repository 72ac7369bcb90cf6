"""The Lightning callback a configuration block builds (:mod:`fairness_callback.integrations.lightning_entry`)."""

from __future__ import annotations

import logging
from typing import Any

from ..probe.suite import ProbeSuite
from ._base import TrackerAdapter
from .config import FairnessConfig
from .lightning import LightningFairnessCallback, pl

__all__ = ["ConfiguredLightningCallback"]

log = logging.getLogger("fairness_callback")


class ConfiguredLightningCallback(LightningFairnessCallback):
    """A :class:`LightningFairnessCallback` from a :class:`FairnessConfig` (the file that
    ``FAIRNESS_CALLBACK_CONFIG`` names).

    Its probe is built at ``setup`` from the block's ``tokenizer``, else the LightningModule's or the
    datamodule's ``tokenizer``. In a trainer that also has a fairness callback added by hand (in
    code, or by LightningCLI), it stands down: it logs why and does nothing else, so the run is
    probed once, by the callback the user wrote.
    """

    added_by_config = True

    def __init__(self, config: FairnessConfig) -> None:
        super().__init__(model_attr=config.model_attr, **config.callback_kwargs())
        self.config = config
        #: True in a trainer that has a fairness callback added by hand: this one then does nothing.
        self.standing_down = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        by_hand = [c for c in trainer.callbacks if isinstance(c, TrackerAdapter) and not c.added_by_config]
        self.standing_down = bool(by_hand)
        if self.standing_down:
            log.warning(
                "%s is set (%s), but this trainer has a %s added by hand: that one probes, the configured one stands down",
                "FAIRNESS_CALLBACK_CONFIG",
                self.config.source,
                type(by_hand[0]).__name__,
            )
            return
        if self.tracker.probe is None:
            datamodule = getattr(trainer, "datamodule", None)
            tokenizer = getattr(pl_module, "tokenizer", None) or getattr(datamodule, "tokenizer", None)
            built = self.config.build_probes(tokenizer)
            self.tracker.probe = ProbeSuite(built["probes"]) if "probes" in built else built["probe"]
        super().setup(trainer, pl_module, stage)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.standing_down:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.standing_down:
            super().on_train_start(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if not self.standing_down:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.standing_down:
            super().on_validation_end(trainer, pl_module)
