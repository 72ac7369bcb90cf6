"""The early-stopping trade-off of a probe history: fairness gains, costs, the recommended step.

Pure functions of probe records (one dict per probed step, as in the history) and cost values;
no file, figure or Markdown here (see :mod:`fairness_callback.offline.report` and
:mod:`fairness_callback.offline.plots`). The definitions are those of ``PROTOCOL.md`` and of Patel et al.
(2025): the fairness gain of stopping at step t is ``1 - |gap(t)| / |gap(final)|``; the cost is
the performance that stopping at t gives up against the final probed step.

With several probes in one run (``probes={"gender": ..., "religion": ...}``) every metric key
carries the probe's name in front (``gender/jsdp/gap``); :func:`probe_axes` finds the probes
and :func:`axes_at` says what stopping at one step does to each of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._numbers import finite, format_number  # kept importable from here
from ..probe.keys import MetricKey

__all__ = [
    "axes_at",
    "axis_of",
    "axis_view",
    "AxisEffect",
    "AxisRow",
    "Cost",
    "cost_at",
    "finite",
    "format_number",
    "gain",
    "GAP_KEY",
    "LEAN_KEY",
    "metric_value",
    "MWU_KEY",
    "probe_axes",
    "recommend_step",
    "recorded_fairness_key",
    "tradeoff_table",
    "TradeoffRow",
    "within",
]

#: The JSD-P gap and its Mann-Whitney p of one probe, after ``<probe>/`` in a several-probe history.
GAP_KEY = "jsdp/gap"
MWU_KEY = "mwu_p/jsdp"
#: What stands for a probe with no gap (only singular-"they" sentences): where its mass leans.
LEAN_KEY = "jsdp/lean"


def metric_value(record: dict[str, Any], key: str) -> float:
    """``record[key]`` as a float; NaN where it is missing or null."""
    value = record.get(key)
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class Cost:
    """Performance values by step, what they are, and which direction is better."""

    description: str
    values: dict[int, float]
    higher_is_better: bool


@dataclass(frozen=True)
class TradeoffRow:
    """Stopping at ``step`` instead of the final step; None where a value is not available.

    ``gain`` is ``1 - |gap(step)| / |gap(final)|``; ``cost`` is in the units of the cost values
    (positive: worse than the final step); ``relative_cost`` is ``cost / |value(final)|`` in percent.
    """

    step: int
    gap: float
    gain: float | None
    cost: float | None
    relative_cost: float | None


def gain(gap: float, final_gap: float) -> float | None:
    """``1 - |gap| / |final_gap|``; None when ``final_gap`` is 0 or missing or ``gap`` is missing."""
    if not (finite(final_gap) and final_gap != 0 and finite(gap)):
        return None
    return 1 - abs(gap) / abs(final_gap)


def cost_at(cost: Cost | None, step: int, final_step: int) -> tuple[float | None, float | None]:
    """(cost, relative cost in %) of stopping at ``step``; None where a value is missing."""
    value, final = (cost.values.get(step), cost.values.get(final_step)) if cost else (None, None)
    if cost is None or value is None or final is None:
        return None, None
    spent = (final - value if cost.higher_is_better else value - final) + 0.0  # + 0.0: no -0 in the table
    return spent, (100 * spent / abs(final) if final != 0 else None)


def tradeoff_table(probes: Sequence[dict[str, Any]], monitor: str, cost: Cost | None) -> list[TradeoffRow]:
    """One :class:`TradeoffRow` per probe: stopping there instead of at the last probed step."""
    final_step, final_gap = int(probes[-1]["step"]), metric_value(probes[-1], monitor)
    rows = []
    for record in probes:
        step, gap = int(record["step"]), metric_value(record, monitor)
        rows.append(TradeoffRow(step, gap, gain(gap, final_gap), *cost_at(cost, step, final_step)))
    return rows


def within(cost: float, max_cost: float) -> bool:
    """``cost <= max_cost``, up to rounding."""
    # 2.2 - 2.1 is 0.10000000000000009: a cost equal to the budget up to rounding is within it.
    return cost <= max_cost or math.isclose(cost, max_cost, rel_tol=1e-9, abs_tol=1e-12)


def recommend_step(rows: Sequence[TradeoffRow], max_cost: float | None = None) -> int | None:
    """The step of largest fairness gain among those with cost <= ``max_cost`` (every step with a
    known gain when ``max_cost`` is None); ties go to the earliest step. None if no step qualifies."""
    candidates = [
        r for r in rows if r.gain is not None and (max_cost is None or (r.cost is not None and within(r.cost, max_cost)))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.gain, -r.step)).step


# -- several probes (axes) -----------------------------------------------------------------------
def probe_axes(probes: Sequence[dict[str, Any]]) -> list[str]:
    """The probe names of a several-probe history, in the order the history writes them; [] for one probe.

    A single probe writes ``jsdp/gap`` (and maybe subsets like ``pro/jsdp/gap``); several probes
    write only ``<name>/jsdp/gap``, so a history with a top-level ``jsdp/gap`` has no axes. A probe
    with no gap (only singular-"they" sentences) is found by its ``<name>/jsdp/lean``.
    """
    if any(finite(r.get(GAP_KEY)) or finite(r.get(LEAN_KEY)) for r in probes):
        return []
    names: dict[str, None] = {}
    suffixes = ("/" + GAP_KEY, "/" + LEAN_KEY)
    for record in probes:
        for key, value in record.items():
            for suffix in suffixes:
                name = key[: -len(suffix)]
                if key.endswith(suffix) and name and "/" not in name and finite(value):
                    names.setdefault(name)
    return list(names)


def recorded_fairness_key(probes: Sequence[dict[str, Any]], name: str) -> str:
    """The key that stands for probe ``name``: ``<name>/jsdp/gap``, or ``<name>/jsdp/lean`` if its
    gap is never defined (a probe of only singular-"they" sentences has no male or female answer)."""
    gap = f"{name}/{GAP_KEY}"
    return gap if any(finite(r.get(gap)) for r in probes) else f"{name}/{LEAN_KEY}"


def axis_of(monitor: str, axes: Sequence[str]) -> str | None:
    """The probe a prefixed ``monitor`` (``gender/jsdp/gap``) belongs to; None if it names none of ``axes``."""
    parsed = MetricKey.try_parse(monitor)
    name = parsed.scope[0] if parsed is not None and parsed.scope else None
    return name if name in axes else None


def axis_view(probes: Sequence[dict[str, Any]], name: str, axes: Sequence[str]) -> list[dict[str, Any]]:
    """The records as one probe ``name`` would have written them: its ``name/`` keys without the
    prefix (in ``by_seed`` too), the other probes' keys left out, the rest (step, loss) kept."""
    prefix, others = f"{name}/", tuple(f"{axis}/" for axis in axes)

    def strip(mapping: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in mapping.items() if not k.startswith(others)}
        kept.update({k[len(prefix) :]: v for k, v in mapping.items() if k.startswith(prefix)})
        return kept

    view = []
    for record in probes:
        record = strip(record)
        if isinstance(record.get("by_seed"), dict):
            record["by_seed"] = strip(record["by_seed"])
        view.append(record)
    return view


@dataclass(frozen=True)
class AxisRow:
    """One probe's JSD-P gap (``key``: its gap, or its lean, see :func:`recorded_fairness_key`) at a step S and at
    the final step, and the gain of stopping at S."""

    axis: str
    gap: float
    final_gap: float
    gain: float | None
    mwu_p: float
    monitored: bool
    key: str = GAP_KEY


@dataclass(frozen=True)
class AxisEffect:
    """What stopping at ``step`` (why: ``label``) does to every probe's gap, monitored probe first."""

    step: int
    label: str
    rows: list[AxisRow]


def axes_at(
    probes: Sequence[dict[str, Any]], axes: Sequence[str], step: int, monitored: str | None, label: str = ""
) -> AxisEffect:
    """Every axis's ``<name>/jsdp/gap`` (or lean, :func:`recorded_fairness_key`) at ``step`` and at the last probed
    step, the fairness gain ``1 - |gap(step)| / |gap(final)|`` and ``<name>/mwu_p/jsdp`` at ``step``
    (NaN where missing, e.g. a step that was not probed, and for a lean, which has no test)."""
    at = next((r for r in probes if int(r["step"]) == step), {})
    final = probes[-1]
    order = sorted(axes, key=lambda name: name != monitored)
    rows = []
    for name in order:
        key = recorded_fairness_key(probes, name)
        gap, final_gap = metric_value(at, key), metric_value(final, key)
        mwu = metric_value(at, f"{name}/{MWU_KEY}") if key.endswith(GAP_KEY) else math.nan
        rows.append(AxisRow(name, gap, final_gap, gain(gap, final_gap), mwu, name == monitored, key[len(name) + 1 :]))
    return AxisEffect(step, label, rows)
