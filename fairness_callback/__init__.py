"""fairness-callback: watch an LLM's gender bias while it trains.

The core (:mod:`.data`; :mod:`.probe`: prompts, encoding, scoring, metrics, the probe;
:mod:`.training`: the tracker that custom loops drive, the stop rule, the history) is
framework-free; the training framework adapters live in :mod:`fairness_callback.integrations`.
"""

from ._extras import available as _available
from .data import ProbeSentence, ProbeSet, probe_set, register_probe_set
from .probe import FairnessProbe, ProbeResult
from .probe.encoding import AnswerTokenError
from .probe.prompts import PromptConfig
from .probe.suite import ProbeSuite
from .probe.tasks import BBQ_TASK, GENDER_TASK, ProbeTask
from .training.alerts import Alerts
from .training.history import read_history, read_run
from .training.stopping import (
    FairnessEarlyStopping,
    SelfStartingCusum,
    SelfStartingEwma,
    SelfStartingRankCusum,
    StopDecision,
    StopReason,
    StopRule,
    parse_stop_rule,
    register_stop_rule,
)
from .training.tracker import FairnessTracker, ProbeOutcome

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it (tool.setuptools.dynamic)

# name -> (module, the optional dependency it needs). Loaded only when asked for (PEP 562), so the
# core never imports a training framework; with the dependency missing the name is not in __all__
# nor dir(), and asking for it raises MissingExtraError (an ImportError) naming the extra.
_ADAPTERS = {
    "HFFairnessCallback": ("fairness_callback.integrations.hf", "accelerate"),
    "LightningFairnessCallback": ("fairness_callback.integrations.lightning", "lightning"),
}


#: Names exported here until 0.1.0 that are internals: still importable from their modules (and from
#: here, with a DeprecationWarning naming the module).
_MOVED = {
    "AnswerTokens": "fairness_callback.probe.encoding",
    "DEFAULT_OPTIONS": "fairness_callback.probe.prompts",
    "DEFAULT_SEEDS": "fairness_callback.probe.prompts",
    "DEFAULT_TEMPLATE": "fairness_callback.probe.prompts",
    "GROUPS": "fairness_callback.probe.prompts",
    "PromptSet": "fairness_callback.probe.prompts",
    "build_prompts": "fairness_callback.probe.prompts",
    "option_order": "fairness_callback.probe.prompts",
    "OCCUPATIONS": "fairness_callback.data.occupations",
    "WINOBIAS_ENV": "fairness_callback.data.sentence",
    "answer_ranks": "fairness_callback.probe.metrics",
    "jsd_parts": "fairness_callback.probe.metrics",
    "mann_whitney": "fairness_callback.probe.metrics",
    "option_ranks": "fairness_callback.probe.metrics",
}


def __getattr__(name: str):
    import importlib

    if name in _ADAPTERS:
        module, needs = _ADAPTERS[name]
        from . import _extras

        if not _extras.available(needs):
            raise _extras.MissingExtraError(needs, name)
        return getattr(importlib.import_module(module), name)
    if name in _MOVED:
        import warnings

        warnings.warn(
            f"fairness_callback.{name} is internal now: import it from {_MOVED[name]}", DeprecationWarning, stacklevel=2
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'fairness_callback' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# The entry points and the types a user holds; everything else is importable from its module
# (docs/contributing.md, "What is public").
__all__ = [
    "Alerts",
    "AnswerTokenError",
    "BBQ_TASK",
    "FairnessEarlyStopping",
    "FairnessProbe",
    "FairnessTracker",
    "GENDER_TASK",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeSentence",
    "ProbeSet",
    "ProbeSuite",
    "ProbeTask",
    "PromptConfig",
    "SelfStartingCusum",
    "SelfStartingEwma",
    "SelfStartingRankCusum",
    "StopDecision",
    "StopReason",
    "StopRule",
    "parse_stop_rule",
    "probe_set",
    "read_history",
    "read_run",
    "register_probe_set",
    "register_stop_rule",
]
# An adapter is exported where its framework is installed (found, not imported: importing stays fast).
__all__ += [name for name, (_, needs) in _ADAPTERS.items() if _available(needs)]
