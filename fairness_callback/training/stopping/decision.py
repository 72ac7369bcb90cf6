"""What a stop rule returns at each probe: a :class:`StopDecision`, and the :class:`StopReason` of a stop.

Reasons are open: a rule defines its own with :meth:`StopReason.define`, each with a priority.
When ranks' rules disagree (each sees its own held-out loss), the reason of highest priority stands
for all, so the priorities are unique: one all-reduce (MAX) of an int then combines every rank's
reason, and :meth:`StopReason.from_priority` turns it back into the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["StopDecision", "StopReason"]


class StopReason(str):
    """Why a stop rule stopped training (or did not): a name (the string itself, and ``value``, as
    written in the history), a ``priority`` that orders reasons when ranks' reasons are combined
    (0: not stopped; higher wins) and what it means. A ``str``, so it compares equal to its name and
    is written to JSON as it.

    Built in, in priority order: ``NOT_STOPPED`` (0), ``GAP_GREW`` (1: the gap grew and the held-out
    loss was within tolerance), ``GAP_GREW_NO_LOSS`` (2: the gap grew; no held-out loss was known).
    Any stop beats not stopping (every rank stops at the same step), and a rank that decided without
    a held-out loss wins over one that checked it, so the stop line never claims a loss check that
    some rank did not make. A rule of one's own defines more with :meth:`define` (the only way to
    make one: each name is one object).
    """

    priority: int
    meaning: str

    def __new__(cls, value: str, priority: int, meaning: str = "") -> StopReason:
        reason = super().__new__(cls, value)
        reason.priority, reason.meaning = priority, meaning
        return reason

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"StopReason({self.value!r}, priority={self.priority})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:  # a pickled reason is the one of its name
        return (StopReason.of, (self.value,))

    NOT_STOPPED: ClassVar[StopReason]
    GAP_GREW: ClassVar[StopReason]
    GAP_GREW_NO_LOSS: ClassVar[StopReason]
    _known: ClassVar[dict[str, StopReason]] = {}

    @classmethod
    def define(cls, value: str, priority: int, meaning: str = "") -> StopReason:
        """The reason named ``value``, made once: defining it again with the same priority returns the
        same object; ValueError if the name or the priority belongs to another reason."""
        known = cls._known.get(value)
        if known is not None and known.priority == priority:
            return known
        taken = next((r for r in cls._known.values() if r.value == value or r.priority == priority), None)
        if taken is not None:
            raise ValueError(
                f"StopReason {value!r} (priority {priority}): {'its name' if taken.value == value else 'its priority'} "
                f"is taken by {taken.value!r} (priority {taken.priority}); known: "
                + ", ".join(f"{r.value}={r.priority}" for r in cls.known())
            )
        reason = cls(value, priority, meaning)
        cls._known[value] = reason
        return reason

    @classmethod
    def known(cls) -> list[StopReason]:
        """Every reason defined so far, lowest priority first."""
        return sorted(cls._known.values(), key=lambda reason: reason.priority)

    @classmethod
    def of(cls, value: str) -> StopReason:
        """The reason named ``value`` (as a history's stop line or a checkpoint keeps it)."""
        try:
            return cls._known[value]
        except KeyError:
            raise ValueError(f"unknown StopReason {value!r}; known: {', '.join(r.value for r in cls.known())}") from None

    @classmethod
    def from_priority(cls, priority: int) -> StopReason:
        """The reason of ``priority`` (the inverse of :attr:`priority`)."""
        found = next((reason for reason in cls._known.values() if reason.priority == priority), None)
        if found is None:
            raise ValueError(f"no StopReason has priority {priority}")
        return found

    @classmethod
    def combine(cls, reasons: Iterable[StopReason]) -> StopReason:
        """The reason that stands for all of ``reasons`` (e.g. every rank's): the highest :attr:`priority`;
        ``NOT_STOPPED`` for none."""
        return max(reasons, key=lambda reason: reason.priority, default=cls.NOT_STOPPED)


StopReason.NOT_STOPPED = StopReason.define("not_stopped", 0, "the rule did not stop")
StopReason.GAP_GREW = StopReason.define(
    "gap_grew", 1, "the watched gap grew (by the rule's test) and the held-out loss was within tolerance"
)
StopReason.GAP_GREW_NO_LOSS = StopReason.define(
    "gap_grew_no_loss", 2, "the watched gap grew (by the rule's test); no held-out loss was known"
)


@dataclass(frozen=True)
class StopDecision:
    """The outcome of one probe: stop or not, why, a sentence with the numbers, and the numbers.

    ``value``: the watched value at this probe (``|value|`` for a rule that watches both directions;
    NaN as the probe gave it); ``best`` / ``best_step``: the fairest value since the rule's reference
    was last set, and its step (the model a stop points back to; None before any); ``wait``: how
    many probes the rule has counted toward a stop; ``statistic``: the rule's own test statistic at
    this probe where it has one (a control chart's value, in standard deviations). A
    :class:`StopDecision` made by hand may leave the numbers out (None).
    """

    should_stop: bool
    reason: StopReason
    message: str
    value: float | None = None
    best: float | None = None
    best_step: int | None = None
    wait: int | None = None
    statistic: float | None = None
