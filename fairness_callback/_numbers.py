"""Numbers as every layer shows them: :func:`finite` and :func:`format_number` (``n/a`` for a missing one)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite", "format_number"]


def finite(value: Any) -> bool:
    """A real, finite number (not a bool, not None, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value: Any, spec: str = ".4g", missing: str = "n/a", finite_only: bool = True) -> str:
    """``format(value, spec)``, or ``missing`` for None and, with ``finite_only``, for anything not
    :func:`finite` (the report writes ``n/a``; the demo's table writes ``nan`` for None and formats
    any other value as it is, ``finite_only=False``)."""
    if value is None or (finite_only and not finite(value)):
        return missing
    return format(value, spec)
