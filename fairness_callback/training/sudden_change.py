"""Sudden-change detection: the paper found bias can emerge suddenly (Pythia-6.9b near step 80k)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median
from typing import Any

__all__ = [
    "sudden_changes",
    "SuddenChangeDetector",
]


class SuddenChangeDetector:
    """Flags a value that jumps from the previous one by more than ``k`` times the recent variation.

    The recent variation is the median absolute step-to-step change over the last ``window``
    changes (robust to one earlier jump). Nothing is flagged until ``window`` changes are known.
    NaN values are skipped.

    Args:
        k: how many times the recent variation a jump must exceed.
        window: how many previous changes define "recent".
    """

    def __init__(self, k: float = 3.0, window: int = 5) -> None:
        if k <= 0 or window < 1:
            raise ValueError(f"need k > 0 and window >= 1, got k={k}, window={window}")
        self.k = k
        self.window = window
        self.last: float | None = None
        self.changes: list[float] = []

    def update(self, value: float) -> bool:
        """Feed the next value; True if it is a sudden change."""
        if value is None or math.isnan(value):
            return False
        sudden = False
        if self.last is not None:
            change = abs(value - self.last)
            if len(self.changes) >= self.window:
                scale = median(self.changes[-self.window :])
                sudden = change > self.k * scale and change > 1e-12
            self.changes = (self.changes + [change])[-self.window :]
        self.last = value
        return sudden

    def state_dict(self) -> dict[str, Any]:
        return {"last": self.last, "changes": list(self.changes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last = state.get("last")
        self.changes = list(state.get("changes", []))


def sudden_changes(values: Sequence[float], k: float = 3.0, window: int = 5) -> list[bool]:
    """:class:`SuddenChangeDetector` over a whole series: one flag per value."""
    detector = SuddenChangeDetector(k, window)
    return [detector.update(v) for v in values]
