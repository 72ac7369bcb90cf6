"""axolotl plugin: the probe in an axolotl run with one line of its YAML.

::

    plugins:
      - fairness_callback.integrations.axolotl.FairnessPlugin
    fairness:                 # optional: every key has a default
      every_n_steps: 200
      probe_set: winobias     # or {name: winobias, directory: /data/winobias}
      early_stopping: true

axolotl loads the plugin by that name (``axolotl.integrations.base.PluginManager``), validates the
``fairness:`` block with the plugin's model (:class:`~fairness_callback.integrations.axolotl_args.FairnessArgs`:
a wrong key is refused before training, by name) and, once its Trainer exists, adds the callback
the block describes (:meth:`FairnessPlugin.add_callbacks_post_trainer`): an
:class:`~fairness_callback.HFFairnessCallback` probing with the Trainer's tokenizer, its history in
axolotl's ``output_dir``, its metrics in the run's own loggers (``wandb_project``, TensorBoard).
Removing the plugin line removes it all. The keys are those of
:mod:`fairness_callback.integrations.config`.
"""

from __future__ import annotations

import logging
from typing import Any

try:
    from axolotl.integrations.base import BasePlugin
except ModuleNotFoundError as error:
    if error.name is None or error.name.split(".")[0] != "axolotl":
        raise
    raise ModuleNotFoundError(
        "fairness_callback's axolotl plugin is loaded by axolotl: pip install axolotl (0.19 or newer)", name="axolotl"
    ) from None

from .config import FairnessConfig

__all__ = ["FairnessPlugin", "PLUGIN"]

#: The line of an axolotl YAML's ``plugins:`` that loads this plugin.
PLUGIN = "fairness_callback.integrations.axolotl.FairnessPlugin"

log = logging.getLogger("fairness_callback")


class FairnessPlugin(BasePlugin):
    """The plugin axolotl loads from ``plugins: [fairness_callback.integrations.axolotl.FairnessPlugin]``."""

    def get_input_args(self) -> str:
        """The pydantic model of the ``fairness:`` block, merged into axolotl's config model."""
        return "fairness_callback.integrations.axolotl_args.FairnessArgs"

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        """The :class:`~fairness_callback.HFFairnessCallback` of the ``fairness:`` block (the defaults
        without one), probing with ``trainer.processing_class``; the history defaults to
        ``<output_dir>/fairness_history.jsonl``."""
        from .hf import HFFairnessCallback

        # axolotl's plugin manager is one per process and asks every plugin it ever loaded: a
        # config without this plugin's line (a second run in the same process) gets nothing.
        if PLUGIN not in (cfg.get("plugins") or []):
            return []
        config = FairnessConfig.from_mapping(cfg.get("fairness"), source="fairness")
        tokenizer = getattr(trainer, "processing_class", None)
        callback = HFFairnessCallback(**config.callback_kwargs(), **config.build_probes(tokenizer))
        log.info("fairness probe added by the axolotl plugin: every %d steps", config.every_n_steps)
        return [callback]
