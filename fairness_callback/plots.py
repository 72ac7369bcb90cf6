"""Figures of a probe history: AR and JSD-P per answer group, and the female - male gap, against step."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from .history import select_run
from .prompts import GROUPS

COLORS = {"male": "#1f77b4", "female": "#d62728", "not_specified": "#7f7f7f"}
LABELS = {"male": "male answer", "female": "female answer", "not_specified": "not specified"}


def metric_value(record: dict[str, Any], key: str) -> float:
    """``record[key]`` as a float; NaN where it is missing or null."""
    value = record.get(key)
    return float("nan") if value is None else float(value)


def probe_records(history: Sequence[dict[str, Any]], run_id: str | None = None) -> list[dict[str, Any]]:
    """The probe lines of one run of a history (``run_id``'s, else the latest run's; see
    :func:`fairness_callback.history.select_run`), one per step in step order: a resumed run's
    repeat of a step keeps the last. Lines of other runs are never mixed in; ``history`` holding one
    run (e.g. the output of ``select_run``) gives that run.
    """
    run = select_run(history, run_id)
    by_step = {int(r["step"]): r for r in run if r.get("event", "probe") == "probe" and r.get("step") is not None}
    return [by_step[step] for step in sorted(by_step)]


def plot_fairness_curves(
    history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str | None = None, alpha: float = 0.01,
    run_id: str | None = None,
) -> Path:
    """Write a PNG of one run (``run_id``, else the latest): AR (log scale) and JSD-P per answer group,
    and the JSD-P gap with the steps where Mann-Whitney p < ``alpha`` marked; a stop line (if any)
    is drawn at its step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = select_run(history, run_id)
    probes = probe_records(run)
    if not probes:
        raise ValueError("the history has no probe records to plot")
    stops = [r for r in run if r.get("event") == "stop"]
    steps = [int(r["step"]) for r in probes]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for ax, metric, name in ((axes[0], "ar", "Average Rank of the correct answer"), (axes[1], "jsdp", "JSD-P of the correct answer")):
        for group in GROUPS:
            ax.plot(steps, [metric_value(r, f"{metric}/{group}") for r in probes], marker="o", ms=3, color=COLORS[group], label=LABELS[group])
        ax.set_title(name + (" (log)" if metric == "ar" else ""))
        ax.set_xlabel("step")
        if metric == "ar":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    gap_ax = axes[2]
    gaps = [metric_value(r, "jsdp/gap") for r in probes]
    gap_ax.axhline(0.0, color="black", lw=0.8)
    gap_ax.plot(steps, gaps, color="#9467bd", marker="o", ms=3, label="JSD-P gap (female - male)")
    significant = [(s, g) for s, g, r in zip(steps, gaps, probes) if metric_value(r, "mwu_p/jsdp") < alpha]
    if significant:
        gap_ax.scatter(*zip(*significant), s=40, facecolors="none", edgecolors="black", label=f"Mann-Whitney p < {alpha:g}", zorder=3)
    for stop in stops:
        gap_ax.axvline(int(stop["step"]), color="black", ls="--", lw=1, label=f"stopped (step {stop['step']})")
        if stop.get("best_step") is not None:
            gap_ax.axvline(int(stop["best_step"]), color="green", ls=":", lw=1, label=f"fairest (step {stop['best_step']})")
    gap_ax.set_title("Unfairness: female - male (> 0 favours male)")
    gap_ax.set_xlabel("step")
    gap_ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
