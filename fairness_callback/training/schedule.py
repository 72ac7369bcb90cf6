"""When the tracker probes: every N optimizer steps, or at an interval kept within a share of
training time (``probe_budget``).

:class:`ProbeSchedule` answers "is this step due?" without changing anything; the tracker tells it
what happened (:meth:`~ProbeSchedule.start_clock`, :meth:`~ProbeSchedule.probed`,
:meth:`~ProbeSchedule.set_interval`). Framework-free and rank-free: the tracker agrees the
interval across ranks before it sets it.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from typing import Any

__all__ = ["check_interval", "ProbeSchedule"]


def check_interval(every_n_steps: Any) -> int:
    """``every_n_steps`` if it is an int >= 1; else ValueError naming it."""
    if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, numbers.Integral) or every_n_steps < 1:
        raise ValueError(f"every_n_steps must be an int >= 1, got {every_n_steps!r}")
    return int(every_n_steps)


class ProbeSchedule:
    """Probe at every multiple of ``every_n_steps`` not probed yet; with ``probe_budget`` (a fraction
    of training time, e.g. 0.02) the interval after each probe is the one that keeps probing within
    it (:meth:`budget_interval`).

    Args:
        every_n_steps: the interval, in optimizer steps (an int >= 1).
        probe_budget: a fraction of training time in (0, 1) for probing, or None to keep the interval.
        clock: the wall clock in seconds (default ``time.perf_counter``).

    Attributes:
        every_n_steps: the interval now (the budget may have changed it).
        last_probed_step: the step of the latest probe (None before any).
    """

    def __init__(
        self, every_n_steps: int = 500, probe_budget: float | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.initial_every_n_steps = check_interval(every_n_steps)
        if probe_budget is not None and not 0 < probe_budget < 1:
            raise ValueError(f"probe_budget must be a fraction of training time in (0, 1), got {probe_budget}")
        self.probe_budget = probe_budget
        self._now = clock or (lambda: time.perf_counter())
        self.reset()

    def reset(self) -> None:
        """A new run: the first interval, nothing probed, the clock not started."""
        self.every_n_steps = self.initial_every_n_steps
        self.last_probed_step: int | None = None
        self._started: tuple[float, int] | None = None  # (wall time, step) when this run was first seen
        self._probe_seconds = 0.0  # spent probing since then

    def is_due(self, step: int) -> bool:
        """Whether ``step`` is a multiple of the interval not probed yet (changes nothing)."""
        return step % self.every_n_steps == 0 and step != self.last_probed_step

    def start_clock(self, step: int) -> None:
        """Training time is counted from here (the first call of a run; later calls change nothing)."""
        if self._started is None:
            self._started = (self._now(), step)

    def probed(self, step: int, seconds: float) -> None:
        """A probe ran at ``step`` and took ``seconds`` (of wall time not spent training)."""
        self.last_probed_step = step
        self._probe_seconds += seconds

    def budget_interval(self, step: int, probe_seconds: float) -> int:
        """The interval that keeps a probe of ``probe_seconds`` within ``probe_budget`` of training
        time, from the training seconds per step since :meth:`start_clock`; 0 when there is no budget
        or no training step to measure yet. Call it before :meth:`probed` for this probe."""
        if self.probe_budget is None or self._started is None or step <= self._started[1]:
            return 0
        training = self._now() - self._started[0] - self._probe_seconds - probe_seconds
        step_seconds = max(training, 1e-9) / (step - self._started[1])
        return max(1, math.ceil(probe_seconds / (self.probe_budget * step_seconds)))

    def set_interval(self, every_n_steps: int) -> None:
        self.every_n_steps = check_interval(every_n_steps)

    def state_dict(self) -> dict[str, Any]:
        return {"every_n_steps": self.every_n_steps, "last_probed_step": self.last_probed_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.every_n_steps = state.get("every_n_steps", self.every_n_steps)
        self.last_probed_step = state.get("last_probed_step")
