"""The configured callback for trainers of the standalone ``pytorch_lightning`` package, whose
callbacks must be ``pytorch_lightning.Callback`` instances (a class apart from ``lightning.pytorch``'s)."""

from __future__ import annotations

import pytorch_lightning

from .lightning_config import ConfiguredLightningCallback

__all__ = ["PTLConfiguredLightningCallback"]


class PTLConfiguredLightningCallback(ConfiguredLightningCallback, pytorch_lightning.Callback):
    """:class:`ConfiguredLightningCallback`, also a ``pytorch_lightning.Callback``."""
