"""Optional dependencies: a missing one fails with one line naming the extra that installs it.

``require("matplotlib", "report")`` imports and returns matplotlib, or raises
:class:`MissingExtraError`: ``report needs matplotlib: pip install "fairness-callback[plot]"``.
A module that is installed but fails to import (a broken or too old install) raises its own error.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = [
    "available",
    "EXTRAS",
    "install_hint",
    "missing_message",
    "MissingExtraError",
    "require",
    "require_all",
]

# import name -> (what to call it in the message, the extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "accelerate": ("accelerate", "hf"),
    "lightning": ("lightning", "lightning"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "matplotlib": ("matplotlib", "plot"),
    "gguf": ("gguf", "gguf"),
    "lm_eval": ("lm-eval", "eval"),
}


def install_hint(module: str, extra: str | None = None) -> str:
    """``pip install "fairness-callback[<extra>]"`` for ``module`` (``extra`` overrides its own)."""
    return f'pip install "fairness-callback[{extra or EXTRAS[module][1]}]"'


def missing_message(module: str, what: str, extra: str | None = None) -> str:
    return f"{what} needs {EXTRAS[module][0]}: {install_hint(module, extra)}"


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install.

    A :class:`ModuleNotFoundError` (so an ``except ImportError`` still catches it) with ``name``
    the missing module and ``extra`` the extra that installs it.
    """

    def __init__(self, module: str, what: str, extra: str | None = None) -> None:
        super().__init__(missing_message(module, what, extra), name=module)
        self.extra = extra or EXTRAS[module][1]


def available(module: str) -> bool:
    """Whether top-level ``module`` is installed (found, not imported)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, what: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying that ``what`` needs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
            raise  # something it imports is missing: its own error says more than ours would
        raise MissingExtraError(module.split(".")[0], what, extra) from None


def require_all(modules: list[str], what: str, extra: str) -> None:
    """:func:`require` each of ``modules`` (installed by ``extra``); the error names every missing one."""
    missing = [m for m in modules if not available(m)]
    if missing:
        error = MissingExtraError(missing[0], what, extra)
        error.msg = f"{what} needs {', '.join(EXTRAS[m][0] for m in missing)}: {install_hint(missing[0], extra)}"
        error.args = (error.msg,)
        raise error
    for module in modules:
        require(module, what, extra)
