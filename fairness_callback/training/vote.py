"""The one collective after each probe: every rank's stop wish, budget interval and failure flags
combined, so every rank stops, raises and probes at the same steps.

Ranks can disagree: each rank's stop rule sees its own held-out loss, a logger fails on rank 0
only, a probe fails on one rank. One all-reduce of the element-wise maximum settles all four:
the stop reason of highest priority (:meth:`StopReason.combine`), the longest interval, and
whether anything failed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..probe.distributed import max_over_ranks
from .stopping import StopDecision, StopReason

__all__ = ["RankVote", "vote"]


@dataclass(frozen=True)
class RankVote:
    """What every rank agreed after a probe.

    ``reason``: why training stops (``StopReason.NOT_STOPPED``: it goes on); ``interval``: the
    probe interval from now on (0: unchanged); ``failed``: a probe or a stop rule failed on some
    rank; ``logger_failed``: sending the metrics failed on some rank.
    """

    reason: StopReason
    interval: int
    failed: bool
    logger_failed: bool

    @property
    def stops(self) -> bool:
        return self.reason is not StopReason.NOT_STOPPED


def vote(decision: StopDecision | None, interval: int, failed: bool, logger_failed: bool) -> RankVote:
    """This rank's ``decision`` (None: no rule, or it did not decide), ``interval`` and failure flags,
    combined with every other rank's in one all-reduce (as given when not distributed)."""
    wanted = decision.reason.priority if decision is not None and decision.should_stop else StopReason.NOT_STOPPED.priority
    reason, interval, failed_anywhere, logger_failed_anywhere = max_over_ranks(
        [wanted, interval, int(failed), int(logger_failed)]
    )
    return RankVote(StopReason.from_priority(reason), interval, bool(failed_anywhere), bool(logger_failed_anywhere))
