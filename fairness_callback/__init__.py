"""fairness-callback: watch an LLM's gender bias while it trains.

The core (:mod:`.data`; :mod:`.probe`: prompts, encoding, scoring, metrics, the probe;
:mod:`.training`: the tracker that custom loops drive, the stop rule, the history) is
framework-free; the training framework adapters live in :mod:`fairness_callback.integrations`.
"""

from ._extras import available as _available
from .data import OCCUPATIONS, WINOBIAS_ENV, ProbeSentence, ProbeSet
from .probe import FairnessProbe, ProbeResult
from .probe.encoding import AnswerTokenError, AnswerTokens
from .probe.metrics import answer_ranks, jsd_parts, mann_whitney, option_ranks
from .probe.prompts import (
    DEFAULT_OPTIONS,
    DEFAULT_SEEDS,
    DEFAULT_TEMPLATE,
    GROUPS,
    PromptConfig,
    PromptSet,
    build_prompts,
    option_order,
)
from .probe.suite import ProbeSuite
from .probe.tasks import BBQ_TASK, GENDER_TASK, ProbeTask
from .training.stopping import (
    FairnessEarlyStopping,
    SelfStartingCusum,
    SelfStartingEwma,
    StopDecision,
    StopReason,
    StopRule,
    parse_stop_rule,
    register_stop_rule,
)
from .training.tracker import FairnessTracker, ProbeOutcome

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it (tool.setuptools.dynamic)

# name -> (module, attribute, the optional dependency it needs). Loaded only when asked for, so the
# core never imports a training framework; with the dependency missing the name is not in __all__,
# hasattr() is False, and asking for it says what to install.
_ADAPTERS = {
    "HFFairnessCallback": ("fairness_callback.integrations.hf", "FairnessCallback", "accelerate"),
    "LightningFairnessCallback": ("fairness_callback.integrations.lightning", "FairnessCallback", "lightning"),
}


def _asked_by_import_statement() -> bool:
    """True when the attribute lookup in progress is a ``from fairness_callback import X`` statement."""
    import sys
    from opcode import opmap

    try:
        frame = sys._getframe(2)  # 0: here, 1: __getattr__, 2: the code that asked
    except ValueError:  # asked from outside any Python frame
        return False
    return 0 <= frame.f_lasti < len(frame.f_code.co_code) and frame.f_code.co_code[frame.f_lasti] == opmap["IMPORT_FROM"]


def __getattr__(name: str):
    if name in _ADAPTERS:
        module, attr, needs = _ADAPTERS[name]
        from . import _extras

        if not _extras.available(needs):
            if _asked_by_import_statement():
                raise _extras.MissingExtraError(needs, name)  # the import statement shows this line
            raise AttributeError(
                _extras.missing_message(needs, name), name=name, obj=None
            )  # hasattr() is False, getattr() says why
        import importlib

        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'fairness_callback' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AnswerTokenError",
    "BBQ_TASK",
    "GENDER_TASK",
    "AnswerTokens",
    "DEFAULT_OPTIONS",
    "DEFAULT_SEEDS",
    "DEFAULT_TEMPLATE",
    "FairnessEarlyStopping",
    "FairnessProbe",
    "FairnessTracker",
    "GROUPS",
    "OCCUPATIONS",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeSentence",
    "ProbeSuite",
    "ProbeTask",
    "PromptSet",
    "ProbeSet",
    "SelfStartingCusum",
    "SelfStartingEwma",
    "StopDecision",
    "StopReason",
    "StopRule",
    "PromptConfig",
    "WINOBIAS_ENV",
    "answer_ranks",
    "build_prompts",
    "jsd_parts",
    "mann_whitney",
    "option_order",
    "option_ranks",
    "parse_stop_rule",
    "register_stop_rule",
]
# An adapter is exported where its framework is installed (found, not imported: importing stays fast).
__all__ += [name for name, (_, _, needs) in _ADAPTERS.items() if _available(needs)]
