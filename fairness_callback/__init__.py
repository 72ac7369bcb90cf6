"""fairness-callback: watch an LLM's gender bias while it trains.

The core (data, prompts, encoding, scoring, metrics, probe, and the monitor that custom loops
drive) is framework-free; the training framework adapters live in
:mod:`fairness_callback.integrations`.
"""

from .data import OCCUPATIONS, WINOBIAS_ENV, ProbeSentence, ProbeSet
from .encoding import AnswerTokenError, AnswerTokens
from .metrics import answer_ranks, jsd_parts, mann_whitney, option_ranks
from .monitor import FairnessMonitor, ProbeOutcome
from .probe import FairnessProbe, ProbeResult
from .stopping import FairnessEarlyStopping, StopDecision, StopReason
from .prompts import DEFAULT_OPTIONS, DEFAULT_SEEDS, DEFAULT_TEMPLATE, GROUPS, PromptConfig, PromptSet, build_prompts, option_order
from .suite import ProbeSuite
from .tasks import BBQ_TASK, GENDER_TASK, ProbeTask

__version__ = "0.1.0"

_ADAPTERS = {
    "HFFairnessCallback": ("fairness_callback.integrations.hf", "FairnessCallback"),
    "LightningFairnessCallback": ("fairness_callback.integrations.lightning", "FairnessCallback"),
}


def __getattr__(name: str):
    # The adapters import their frameworks; load them only when asked for, so the core never does.
    if name in _ADAPTERS:
        import importlib

        module, attr = _ADAPTERS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'fairness_callback' has no attribute {name!r}")

__all__ = [
    "AnswerTokenError",
    "BBQ_TASK",
    "GENDER_TASK",
    "AnswerTokens",
    "DEFAULT_OPTIONS",
    "DEFAULT_SEEDS",
    "DEFAULT_TEMPLATE",
    "FairnessEarlyStopping",
    "FairnessMonitor",
    "FairnessProbe",
    "HFFairnessCallback",
    "LightningFairnessCallback",
    "GROUPS",
    "OCCUPATIONS",
    "ProbeOutcome",
    "ProbeResult",
    "ProbeSentence",
    "ProbeSuite",
    "ProbeTask",
    "PromptSet",
    "ProbeSet",
    "StopDecision",
    "StopReason",
    "PromptConfig",
    "WINOBIAS_ENV",
    "answer_ranks",
    "build_prompts",
    "jsd_parts",
    "mann_whitney",
    "option_order",
    "option_ranks",
]
