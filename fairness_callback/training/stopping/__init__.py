"""Fairness-aware early stopping: rules that stop when the gap grows while held-out loss holds.

Framework-free: the tracker feeds a rule probe metrics and held-out losses, and acts on its
:class:`StopDecision`. The parts:

- ``decision``: :class:`StopDecision`, :class:`StopReason` (open: a rule defines its own reasons).
- ``rule``: :class:`StopRule` (the protocol) and :class:`GapRule` (the base of the rules here).
- ``guards``: warm-up, accuracy, held-out-loss tolerance, rebase on a falling loss.
- ``best``: :class:`FairnessEarlyStopping` (``rule=best``: the gap above its best by ``min_delta``).
- ``charts``: :class:`SelfStartingCusum` (``rule=cusum``), :class:`SelfStartingRankCusum`
  (``rule=rank-cusum``), :class:`SelfStartingEwma` (``rule=ewma``): thresholds in the run's own
  standard deviations.
- ``registry``: rules by name, and the ``--stop-rule "rule=NAME,ARG=VALUE"`` texts.
"""

from .best import FairnessEarlyStopping
from .charts import (
    SelfStartingBaseline,
    SelfStartingCusum,
    SelfStartingEwma,
    SelfStartingRankCusum,
    SequentialRankBaseline,
)
from .decision import StopDecision, StopReason
from .guards import HeldOutLoss, MinAccuracy, RebaseOnLossDrop, Warmup
from .registry import DEFAULT_RULE, make_stop_rule, parse_stop_rule, register_stop_rule, stop_rule_class, stop_rule_names
from .rule import GapRule, StopRule

__all__ = [
    "DEFAULT_RULE",
    "FairnessEarlyStopping",
    "GapRule",
    "HeldOutLoss",
    "MinAccuracy",
    "RebaseOnLossDrop",
    "SelfStartingBaseline",
    "SelfStartingCusum",
    "SelfStartingEwma",
    "SelfStartingRankCusum",
    "SequentialRankBaseline",
    "StopDecision",
    "StopReason",
    "StopRule",
    "Warmup",
    "make_stop_rule",
    "parse_stop_rule",
    "register_stop_rule",
    "stop_rule_class",
    "stop_rule_names",
]
