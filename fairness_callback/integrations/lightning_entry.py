"""The probe in every Lightning ``Trainer``, without a line of code: opt in with an environment variable.

Lightning calls, when it builds a ``Trainer``, the factories installed packages register under the
entry-point groups ``lightning.pytorch.callbacks_factory`` (``import lightning``) and
``pytorch_lightning.callbacks_factory`` (the standalone ``pytorch_lightning``), and appends what they
return to the trainer's callbacks. This package registers :func:`lightning_callbacks` and
:func:`pytorch_lightning_callbacks` there (pyproject.toml). They return nothing unless
``FAIRNESS_CALLBACK_CONFIG`` names a YAML file of the configuration keys
(:mod:`fairness_callback.integrations.config`), so a stock script probes with::

    FAIRNESS_CALLBACK_CONFIG=fairness.yaml python train.py

A wrong key or value in the file stops the ``Trainer`` from being built, with the file, line and
key named. A trainer that already has a fairness callback added by hand keeps only that one (the
configured one stands down, saying so). Unset, the factories return an empty list and import
nothing of this package beyond this module.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["CONFIG_ENV", "lightning_callbacks", "pytorch_lightning_callbacks"]

#: The environment variable that names the configuration file.
CONFIG_ENV = "FAIRNESS_CALLBACK_CONFIG"


def lightning_callbacks() -> list[Any]:
    """The ``lightning.pytorch.callbacks_factory`` entry point: ``[ConfiguredLightningCallback]`` when
    ``FAIRNESS_CALLBACK_CONFIG`` is set, else ``[]``."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return []
    from .config import load_config_file
    from .lightning_config import ConfiguredLightningCallback

    return [ConfiguredLightningCallback(load_config_file(path))]


def pytorch_lightning_callbacks() -> list[Any]:
    """The ``pytorch_lightning.callbacks_factory`` entry point (the standalone package's trainers):
    as :func:`lightning_callbacks`, a callback that is also a ``pytorch_lightning.Callback``."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return []
    from .config import load_config_file
    from .lightning_config_ptl import PTLConfiguredLightningCallback

    return [PTLConfiguredLightningCallback(load_config_file(path))]
