"""fairness-callback: watch an LLM's gender bias while it trains.

The core (data, prompts, encoding, scoring, metrics, probe) is framework-free; the training
framework adapters live in :mod:`fairness_callback.integrations`.
"""

from .data import OCCUPATIONS, WINOBIAS_ENV, ProbeSentence, ProbeSet
from .encoding import AnswerTokenError, AnswerTokens
from .metrics import answer_ranks, jsd_parts, mann_whitney, option_ranks
from .probe import FairnessProbe, ProbeResult
from .prompts import DEFAULT_OPTIONS, DEFAULT_SEEDS, DEFAULT_TEMPLATE, GROUPS, PromptConfig, build_prompts, option_order

__version__ = "0.1.0"

__all__ = [
    "AnswerTokenError",
    "AnswerTokens",
    "DEFAULT_OPTIONS",
    "DEFAULT_SEEDS",
    "DEFAULT_TEMPLATE",
    "FairnessProbe",
    "GROUPS",
    "OCCUPATIONS",
    "ProbeResult",
    "ProbeSentence",
    "ProbeSet",
    "PromptConfig",
    "WINOBIAS_ENV",
    "answer_ranks",
    "build_prompts",
    "jsd_parts",
    "mann_whitney",
    "option_order",
    "option_ranks",
]
