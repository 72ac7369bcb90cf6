"""The ``fairness:`` block of an axolotl YAML, as the pydantic model axolotl validates it with.

axolotl merges the model that a plugin's ``get_input_args()`` names into its own config model, so a
wrong key or value in the block is an error of axolotl's own validation, before any model loads,
naming the key (``fairness.every_n_stepz: unknown key; did you mean 'every_n_steps'?``). This
module needs only pydantic (which axolotl installs); the plugin is
:mod:`fairness_callback.integrations.axolotl`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator

from .config import FairnessConfig

__all__ = ["FairnessArgs"]


class FairnessArgs(BaseModel):
    """``fairness:``: the keys of :data:`fairness_callback.integrations.config.KEYS` (none: the defaults)."""

    fairness: dict[str, Any] | None = None

    @field_validator("fairness", mode="before")
    @classmethod
    def _check(cls, value: Any) -> Any:
        if isinstance(value, dict) and "model_attr" in value:
            raise ValueError("fairness.model_attr: a Lightning key; under axolotl the probe runs on the Trainer's model")
        FairnessConfig.from_mapping(value, source="fairness")  # a ConfigError (a ValueError) names the key
        return value
