"""Every figure of a probe history, shared by the report and the demo.

The report's figures (:func:`plot_curves`, :func:`plot_gap`, :func:`plot_not_specified`,
:func:`plot_pro_anti` and, with several probes, :func:`plot_axes`) and the demo's one-page
``fairness_curves.png`` (:func:`plot_fairness_curves`) draw from the same helpers. matplotlib is
imported (with the Agg backend) only when a figure is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..probe.tasks import GENDER_TASK, ProbeTask, task_of_keys
from ..training.history import is_probe, is_stop, select_run
from .tradeoff import GAP_KEY, finite, metric_value, recorded_fairness_key

__all__ = [
    "COLORS",
    "LABELS",
    "gap_words",
    "Marks",
    "metric_value",
    "plot_axes",
    "plot_curves",
    "plot_fairness_curves",
    "plot_gap",
    "plot_not_specified",
    "plot_pro_anti",
    "probe_records",
    "recorded_task",
]

COLORS = {"male": "#1f77b4", "female": "#d62728", "not_specified": "#7f7f7f"}
LABELS = {"male": "male answer", "female": "female answer", "not_specified": "not specified"}
_GAP_COLOR = "#9467bd"
_OTHER_COLORS = ("#2ca02c", "#ff7f0e", "#7f7f7f", "#8c564b", "#e377c2")


def recorded_task(probes: Sequence[dict[str, Any]], prefix: str = "") -> ProbeTask:
    """The task of the probe lines ``probes``, from their keys (see :func:`~fairness_callback.probe.tasks.task_of_keys`)."""
    return task_of_keys({key for record in probes for key in record}, prefix)


def _color(task: ProbeTask, group: str) -> str:
    return COLORS.get(group) or _OTHER_COLORS[task.groups.index(group) % len(_OTHER_COLORS)]


def _label(group: str) -> str:
    return LABELS.get(group) or f"{group.replace('_', ' ')} answer"


def gap_words(task: ProbeTask) -> str:
    """``"female - male (> 0 favours male)"``: the gap of ``task`` and what its sign means."""
    minuend, subtrahend = task.gap
    return f"{minuend} - {subtrahend} (> 0 favours {subtrahend})"


def probe_records(history: Sequence[dict[str, Any]], run_id: str | None = None) -> list[dict[str, Any]]:
    """The probe lines of one run of a history (``run_id``'s, else the latest run's; see
    :func:`fairness_callback.training.history.select_run`), one per step in step order: a resumed run's
    repeat of a step keeps the last. Lines of other runs are never mixed in; ``history`` holding one
    run (e.g. the output of ``select_run``) gives that run.
    """
    run = select_run(history, run_id)
    by_step = {int(r["step"]): r for r in run if is_probe(r) and r.get("step") is not None}
    return [by_step[step] for step in sorted(by_step)]


def _pyplot():
    from .._extras import require

    matplotlib = require("matplotlib", "drawing figures (report, demo)")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _steps(probes: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([int(r["step"]) for r in probes])


def _series(probes: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([metric_value(r, key) if finite(r.get(key)) else np.nan for r in probes])


def _seed_band(probes: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Min and max over the option-order seeds of ``by_seed[key]`` per probe (NaN where absent), and
    the largest number of seeds seen."""
    low, high, seeds = [], [], 0
    for record in probes:
        values = [v for v in (record.get("by_seed") or {}).get(key) or [] if finite(v)]
        low.append(min(values) if values else np.nan)
        high.append(max(values) if values else np.nan)
        seeds = max(seeds, len(values))
    return np.array(low), np.array(high), seeds


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _group_panel(
    ax, probes: Sequence[dict[str, Any]], metric: str, band: bool = True, prefix: str = "", task: ProbeTask = GENDER_TASK
) -> int:
    """``<prefix><metric>/<group>`` of every answer group of ``task`` against step, with the min-max band
    over the option-order seeds when ``band``; returns the largest number of seeds seen (0 without a band)."""
    steps, seeds = _steps(probes), 0
    for group in task.groups:
        key = f"{prefix}{metric}/{group}"
        ax.plot(steps, _series(probes, key), marker="o", ms=3, color=_color(task, group), label=_label(group))
        if band:
            low, high, n = _seed_band(probes, key)
            ax.fill_between(steps, low, high, color=_color(task, group), alpha=0.2, lw=0)
            seeds = max(seeds, n)
    return seeds


def plot_curves(probes: Sequence[dict[str, Any]], path: Path, task: ProbeTask | None = None) -> Path:
    """``curves.png``: AR (log) and JSD-P per answer group of ``task`` (default: :func:`recorded_task`),
    with a min-max band over option-order seeds."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    panels = (
        ("ar", "Average Rank of the correct answer (log; lower is better)"),
        ("jsdp", "JSD-P of the correct answer (lower is better)"),
    )
    task = task or recorded_task(probes)
    for ax, (metric, title) in zip(axes, panels):
        seeds = _group_panel(ax, probes, metric, task=task)
        band = f"shaded: min-max over {seeds} option-order seeds" if seeds else "no per-seed values: no band"
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + [Patch(color="gray", alpha=0.3, label=band)], fontsize=8)
        ax.set(title=title, xlabel="step", yscale="log" if metric == "ar" else "linear")
    return _save(fig, path)


class Marks(NamedTuple):
    """What the gap figure marks: the monitored gap's sudden changes and the recommended stop step."""

    monitor: str
    sudden: list[int]
    recommended: int | None


def _gap_panel(
    ax,
    probes: Sequence[dict[str, Any]],
    metric: str,
    alpha: float,
    marks: Marks,
    ci: bool = True,
    prefix: str = "",
    task: ProbeTask = GENDER_TASK,
) -> None:
    steps, gaps = _steps(probes), _series(probes, f"{prefix}{metric}/gap")
    ax.axhline(0.0, color="black", lw=0.8)
    low, high = _series(probes, f"{prefix}{metric}/gap_ci_low"), _series(probes, f"{prefix}{metric}/gap_ci_high")
    if ci and np.isfinite(low).any():
        ax.fill_between(steps, low, high, color=_GAP_COLOR, alpha=0.2, lw=0, label="95% bootstrap CI (sentences)")
    ax.plot(steps, gaps, color=_GAP_COLOR, marker="o", ms=3, label=f"{prefix}{metric}/gap ({task.gap[0]} - {task.gap[1]})")
    significant = _series(probes, f"{prefix}mwu_p/{metric}") < alpha
    if significant.any():
        ax.scatter(
            steps[significant],
            gaps[significant],
            s=60,
            facecolors="none",
            edgecolors="black",
            zorder=3,
            label=f"Mann-Whitney p < {alpha:g}",
        )
    sudden = np.isin(steps, marks.sudden)
    if sudden.any():
        ax.scatter(
            steps[sudden], gaps[sudden], s=90, marker="^", color="#ff7f0e", zorder=4, label=f"sudden change of {marks.monitor}"
        )


def _mark_steps(ax, stops: Sequence[dict[str, Any]], recommended: int | None, labelled: bool) -> None:
    lines = [(int(stop["step"]), dict(color="black", ls="--", lw=1), f"stopped (step {stop['step']})") for stop in stops]
    lines += [
        (int(stop["best_step"]), dict(color="green", ls="-.", lw=1), f"fairest (step {stop['best_step']})")
        for stop in stops
        if stop.get("best_step") is not None
    ]
    if recommended is not None:
        lines.append((recommended, dict(color="green", lw=3, alpha=0.4), f"recommended stop (step {recommended})"))
    for step, style, label in lines:
        ax.axvline(step, label=label if labelled else None, **style)


def plot_gap(
    probes: Sequence[dict[str, Any]],
    stops: Sequence[dict[str, Any]],
    path: Path,
    alpha: float,
    marks: Marks,
    task: ProbeTask | None = None,
) -> Path:
    """``gap.png``: the JSD-P and AR gaps of ``task`` (default: :func:`recorded_task`), their CIs,
    significant and sudden probes, the stops and the recommended step."""
    plt = _pyplot()
    task = task or recorded_task(probes)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    for ax, metric, name in ((axes[0], "jsdp", "JSD-P"), (axes[1], "ar", "Average Rank")):
        _gap_panel(ax, probes, metric, alpha, marks, task=task)
        _mark_steps(ax, stops, marks.recommended, labelled=ax is axes[0])
        ax.set(title=f"{name} gap: {gap_words(task)}", xlabel="step")
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_not_specified(probes: Sequence[dict[str, Any]], path: Path) -> Path:
    """``not_specified.png``: on "not specified" prompts, the JSD-P parts on the male and female options."""
    plt = _pyplot()
    steps = _steps(probes)
    male, female = _series(probes, "jsdp/not_specified/male"), _series(probes, "jsdp/not_specified/female")
    fig, ax = plt.subplots(figsize=(7, 4.4), constrained_layout=True)
    ax.plot(steps, male, marker="o", ms=3, color=COLORS["male"], label='part on "male"')
    ax.plot(steps, female, marker="o", ms=3, color=COLORS["female"], label='part on "female"')
    ax.plot(steps, male + female, ls="--", color=COLORS["not_specified"], label="either gender (sum)")
    ax.set(
        title='"Not specified" prompts: how much the model assumes a gender',
        xlabel="step",
        ylabel="mean JSD-P part on the option",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_pro_anti(probes: Sequence[dict[str, Any]], path: Path) -> Path:
    """``pro_anti.png``: JSD-P gap and per-group JSD-P of pro- vs anti-stereotypical sentences."""
    plt = _pyplot()
    steps = _steps(probes)
    fig, (gap_ax, group_ax) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    gap_ax.axhline(0.0, color="black", lw=0.8)
    for subset, style in (("pro", "-"), ("anti", "--")):
        gap_ax.plot(
            steps,
            _series(probes, f"{subset}/jsdp/gap"),
            ls=style,
            marker="o",
            ms=3,
            color=_GAP_COLOR,
            label=f"{subset}-stereotypical",
        )
        for group in ("male", "female"):
            group_ax.plot(
                steps,
                _series(probes, f"{subset}/jsdp/{group}"),
                ls=style,
                marker="o",
                ms=3,
                color=COLORS[group],
                label=f"{subset}, {LABELS[group]}",
            )
    gap_ax.set(title="JSD-P gap (female - male) by subset", xlabel="step")
    group_ax.set(title="JSD-P of the correct answer by subset (lower is better)", xlabel="step")
    gap_ax.legend(fontsize=8)
    group_ax.legend(fontsize=8)
    return _save(fig, path)


def plot_axes(
    probes: Sequence[dict[str, Any]],
    axes: Sequence[str],
    stops: Sequence[dict[str, Any]],
    path: Path,
    recommended: int | None = None,
    monitored: str | None = None,
    fairest: int | None = None,
) -> Path:
    """``axes.png``: every probe's ``<name>/jsdp/gap`` against step, one line per probe (the monitored
    one thicker), with the stop steps, the stop lines' fairest steps, ``recommended`` and (dotted)
    ``fairest``, the fairest probed step of the monitored gap, marked."""
    fig, ax = _pyplot().subplots(figsize=(8, 4.6), constrained_layout=True)
    _axes_panel(ax, probes, axes, monitored)
    _mark_steps(ax, stops, recommended, labelled=True)
    if fairest is not None:
        ax.axvline(fairest, color="green", ls=":", lw=1.5, label=f"fairest of {monitored or 'the monitor'} (step {fairest})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _axes_panel(ax, probes: Sequence[dict[str, Any]], axes: Sequence[str], monitored: str | None) -> None:
    """Every probe's ``<name>/jsdp/gap`` against step, one line per probe, the monitored one thicker."""
    steps = _steps(probes)
    ax.axhline(0.0, color="black", lw=0.8)
    colors = [c for c in _pyplot().rcParams["axes.prop_cycle"].by_key()["color"] if c != "#2ca02c"]  # green marks steps
    for i, name in enumerate(axes):
        key = recorded_fairness_key(probes, name)
        note = " (monitored)" if name == monitored else "" if key.endswith(GAP_KEY) else " (lean: it has no gap)"
        ax.plot(
            steps,
            _series(probes, key),
            marker="o",
            ms=3,
            color=colors[i % len(colors)],
            lw=2.5 if name == monitored else 1.2,
            label=name + note,
        )
    ax.set(title="Every probe's JSD-P gap (> 0: its first group does worse)", xlabel="step", ylabel="JSD-P gap (or lean)")


def plot_fairness_curves(
    history: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    title: str | None = None,
    alpha: float = 0.01,
    run_id: str | None = None,
    probe: str | None = None,
    axes: Sequence[str] = (),
) -> Path:
    """Write a PNG of one run (``run_id``, else the latest): AR (log scale) and JSD-P per answer group,
    and the JSD-P gap with the steps where Mann-Whitney p < ``alpha`` marked; a stop line (if any)
    is drawn at its step (the demo's ``fairness_curves.png``: the report's panels on one page).

    With several probes in the run, ``probe`` names the gender probe drawn in those panels (keys
    ``<probe>/...``), and ``axes`` adds a fourth panel: every named probe's JSD-P gap.
    """
    plt = _pyplot()
    run = select_run(history, run_id)
    probes = probe_records(run)
    if not probes:
        raise ValueError("the history has no probe records to plot")
    stops = [r for r in run if is_stop(r)]
    prefix = f"{probe}/" if probe else ""
    fig, panels = plt.subplots(1, 4 if axes else 3, figsize=(20 if axes else 15, 4.2), constrained_layout=True)
    for ax, metric, name in (
        (panels[0], "ar", "Average Rank of the correct answer"),
        (panels[1], "jsdp", "JSD-P of the correct answer"),
    ):
        _group_panel(ax, probes, metric, band=False, prefix=prefix)
        ax.set(
            title=f"{prefix}{name}" + (" (log)" if metric == "ar" else ""),
            xlabel="step",
            yscale="log" if metric == "ar" else "linear",
        )
        ax.legend(fontsize=8)
    gap_ax = panels[2]
    _gap_panel(gap_ax, probes, "jsdp", alpha, Marks(f"{prefix}jsdp/gap", [], None), ci=False, prefix=prefix)
    _mark_steps(gap_ax, stops, None, labelled=True)
    gap_ax.set(title=f"{prefix}unfairness: female - male (> 0 favours male)", xlabel="step")
    gap_ax.legend(fontsize=8)
    if axes:
        _axes_panel(panels[3], probes, axes, probe)
        _mark_steps(panels[3], stops, None, labelled=False)
        panels[3].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)
