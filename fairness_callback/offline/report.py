"""A report of a probe history: figures, a per-probe table and the early-stopping trade-off.

:func:`write_report` reads a ``fairness_history.jsonl`` (written by the live callbacks or the
offline replay) and writes PNG figures and ``report.md`` into one directory. The definitions are
those of ``PROTOCOL.md`` and of Patel et al. (2025): gap = metric(female-answer prompts) -
metric(male-answer prompts); the fairness gain of stopping at step t is
``1 - |gap(t)| / |gap(final)|``; the cost is the performance that stopping at t gives up against
the final probed step. Older histories (no ``by_seed``, no confidence interval, no held-out loss,
no pro/anti subsets) give the same report with "n/a" cells, no bands and skipped figures.

A history can hold several runs (two ``fit`` calls in one folder, a replay next to a live run):
a report is of one run, the latest by default or any by id, and says which; the other runs are
listed, never mixed in (see :mod:`fairness_callback.training.history`).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._extras import require
from ..probe.keys import MetricKey
from ..probe.tasks import GENDER_TASK, ProbeTask
from ..training.history import LOSS_KEYS, RunSummary, history_runs, is_run_start, is_stop, latest_run_id, read_history, select_run
from ..training.sudden_change import sudden_changes
from .lm_eval_pass import accuracy_column, lm_eval_higher_is_better
from .plots import Marks, plot_axes, plot_curves, plot_gap, plot_not_specified, plot_pro_anti, probe_records, recorded_task
from .tradeoff import (
    GAP_KEY,
    AxisEffect,
    AxisRow,
    Cost,
    TradeoffRow,
    axes_at,
    axis_of,
    axis_view,
    format_number,
    metric_value,
    probe_axes,
    recommend_step,
    tradeoff_table,
)
from .tradeoff import finite as _finite
from .tradeoff import within as _within

#: Re-exported: the trade-off math lives in :mod:`fairness_callback.offline.tradeoff`, the figures in
#: :mod:`fairness_callback.offline.plots`; these names stay importable from here.
__all__ = [
    "REPORT_FILENAME",
    "AxisEffect",
    "AxisRow",
    "Cost",
    "ReportError",
    "ReportSummary",
    "TradeoffRow",
    "load_probes",
    "read_cost_csv",
    "recommend_step",
    "resolve_cost",
    "tradeoff_table",
    "write_report",
]

REPORT_FILENAME = "report.md"
_BOOKKEEPING = {"event", "step", "time", "probe_seconds", "schema"}
_FIGURES: dict[str, str] = {
    "curves": "Average Rank (log scale) and JSD-P of the correct answer per answer group; shaded: the "
    "min-max range over the option-order seeds (absent when the history has no per-seed values).",
    "gap": "Unfairness gap ({minuend} - {subtrahend}; > 0: the model does better on {subtrahend}-answer prompts) of JSD-P "
    "and Average Rank, with the 95% bootstrap CI over sentences as a band where recorded; circled: "
    "Mann-Whitney p < alpha; orange triangles: sudden changes of the monitored gap; dashed / dash-dotted: "
    "the stop step and the fairest step of the stop line; thick green: the recommended stop step.",
    "not_specified": 'Prompts whose answer is "not specified": the JSD-P part on the "male" and the "female" '
    "option (with log base 2, half the option's probability). Higher: the model assumes "
    "that gender more although the sentence does not give one.",
    "pro_anti": "Pro- vs anti-stereotypical sentences: the JSD-P gap of each subset, and the JSD-P of the "
    "male- and female-answer prompts in each.",
    "axes": "Several probes: every probe's JSD-P gap (`<probe>/jsdp/gap`) against step, the monitored probe "
    "thick; dashed / dash-dotted: the stop step and the fairest step of the stop line; thick green: the "
    "recommended stop step (dotted green: the fairest probed step of the monitored gap, without --max-cost).",
}


class ReportError(ValueError):
    """A history, cost file or option the report cannot use; the message names it."""


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`write_report` wrote and found."""

    history: Path
    report: Path
    figures: dict[str, Path]
    num_probes: int
    first_step: int
    final_step: int
    monitor: str
    cost: Cost | None
    tradeoff: list[TradeoffRow]
    max_cost: float | None
    recommended_step: int | None
    fairest_step: int | None
    sudden_steps: list[int]
    notes: list[str]
    run_id: str | None = None
    runs: tuple[RunSummary, ...] = ()
    latest_run_id: str | None = None
    #: Several probes in one run: their names (in the history's order), the monitored one, and what
    #: stopping at the recommended (else the fairest) step and at each stop step does to every probe.
    axes: tuple[str, ...] = ()
    monitored_probe: str | None = None
    axis_effects: list[AxisEffect] = field(default_factory=list)
    #: The task of the reported probe (its answer groups and gap), read from the history's keys.
    task: ProbeTask = GENDER_TASK


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """One run of a history file, read for a report."""

    run_id: str | None
    runs: tuple[RunSummary, ...]
    latest_run_id: str | None
    probes: list[dict[str, Any]]
    stops: list[dict[str, Any]]
    starts: list[dict[str, Any]] = field(default_factory=list)


def _read_run(path: Path, run_id: str | None, strict: bool = False) -> _Run:
    if not path.is_file():
        raise ReportError(f"history {path}: no such file")
    history = read_history(path, strict)
    runs = tuple(history_runs(history))
    try:
        records = select_run(history, run_id, source=f"history {path}")
    except ValueError as error:
        raise ReportError(f"{error}; pick one with --run-id ID") from None
    chosen = run_id if run_id is not None else latest_run_id(history)  # None: an empty file
    probes = probe_records(records)
    if not probes:
        if len(runs) <= 1:
            raise ReportError(f"history {path} has no probe records")
        others = "; ".join(r.describe() for r in runs if r.run_id != chosen)
        which = "run" if run_id is not None else "the latest run,"
        raise ReportError(
            f"history {path}: {which} {chosen!r} has no probe records; its other runs: {others}; pick one with --run-id ID"
        )
    return _Run(
        chosen,
        runs,
        latest_run_id(history),
        probes,
        [r for r in records if is_stop(r)],
        [r for r in records if is_run_start(r)],
    )


def load_probes(
    history_path: str | os.PathLike, run_id: str | None = None, strict: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The probe lines (one per step, in step order) and the stop lines of one run of a history file:
    ``run_id``'s, or the latest run's. Lines of other runs are never included.

    Raises :class:`ReportError` for a missing file, an unknown ``run_id`` (listing the file's runs)
    or a run without probes.
    """
    run = _read_run(Path(history_path), run_id, strict)
    return run.probes, run.stops


def _columns(probes: Sequence[dict[str, Any]], keep) -> list[str]:
    keys = {key for record in probes for key, value in record.items() if _finite(value) and keep(key)}
    return sorted(keys)


def _has(probes: Sequence[dict[str, Any]], *keys: str) -> bool:
    return bool(_columns(probes, lambda key: key in keys))


def _loss_key(probes: Sequence[dict[str, Any]]) -> str | None:
    return next((key for key in LOSS_KEYS if _has(probes, key)), None)


def _check_monitor(probes: Sequence[dict[str, Any]], monitor: str, path: Path) -> None:
    if not _has(probes, monitor):
        gaps = ", ".join(_columns(probes, lambda key: key.endswith("gap"))) or "none"
        raise ReportError(f"--monitor {monitor!r} is not in {path}; its gap metrics: {gaps}")


def read_cost_csv(path: str | os.PathLike) -> dict[int, float]:
    """``step,score`` rows of a CSV file; an optional header line, blank lines and ``#`` lines are skipped.

    Raises :class:`ReportError` naming the file and line for a row that is not an integer step and
    a finite number, or that repeats a step.
    """
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"--cost-csv {path}: no such file")
    scores: dict[int, float] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header_allowed = True
        for row in reader:
            if not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            parsed = _csv_row(row)
            if parsed is None and header_allowed and not _number(row[0]):
                header_allowed = False
                continue
            header_allowed = False
            if parsed is None:
                raise ReportError(
                    f"{path}, line {reader.line_num}: expected 'step,score' (an integer step "
                    f"and a finite number), got {','.join(row)!r}"
                )
            if parsed[0] in scores:
                raise ReportError(f"{path}, line {reader.line_num}: step {parsed[0]} appears twice")
            scores[parsed[0]] = parsed[1]
    if not scores:
        raise ReportError(f"{path} has no 'step,score' rows")
    return scores


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_row(row: Sequence[str]) -> tuple[int, float] | None:
    if len(row) != 2:
        return None
    try:
        step, score = int(row[0]), float(row[1])
    except ValueError:
        return None
    return (step, score) if math.isfinite(score) else None


def _history_cost(probes: Sequence[dict[str, Any]], column: str, path: Path, higher_is_better: bool) -> Cost:
    values = {int(r["step"]): float(r[column]) for r in probes if _finite(r.get(column))}
    if not values:
        available = _columns(
            probes,
            lambda key: key not in _BOOKKEEPING and MetricKey.try_parse(key) is None and not key.startswith("stopping/"),
        )
        raise ReportError(f"--cost-column {column!r} is not in {path}; available columns: {', '.join(available) or 'none'}")
    return Cost(f"history column `{column}`", values, higher_is_better)


def resolve_cost(
    probes: Sequence[dict[str, Any]],
    history_path: str | os.PathLike,
    cost_csv: str | os.PathLike | None = None,
    cost_column: str | None = None,
    higher_is_better: bool | None = None,
) -> Cost | None:
    """The performance values the cost is computed from, or None if there are none.

    A cost CSV (higher is better unless ``higher_is_better=False``), else ``cost_column`` of the
    history, else the history's first lm-eval accuracy (``lm_eval/<task>/acc``, ``acc_norm`` or
    ``exact_match``, written by ``replay --lm-eval-task``: higher is better), else the first of
    :data:`LOSS_KEYS` the history has. A history column is lower-is-better unless
    ``higher_is_better=True``, except an ``lm_eval/<task>/<metric>`` column: higher is better
    unless it is a perplexity or bits per byte (``higher_is_better`` overrides both).
    """
    if cost_csv is not None and cost_column is not None:
        raise ReportError("give --cost-csv or --cost-column, not both")
    if cost_csv is not None:
        better = True if higher_is_better is None else higher_is_better
        return Cost(f"`{Path(cost_csv).name}` (step,score)", read_cost_csv(cost_csv), better)
    if cost_column is not None:
        direction = lm_eval_higher_is_better(cost_column) if higher_is_better is None else higher_is_better
        return _history_cost(probes, cost_column, Path(history_path), bool(direction))
    accuracy = accuracy_column(list(dict.fromkeys(k for r in probes for k, v in r.items() if _finite(v))))
    if accuracy is not None:
        values = _history_cost(probes, accuracy, Path(history_path), True).values
        return Cost(
            f"history column `{accuracy}` (lm-evaluation-harness's accuracy, written by `replay --lm-eval-task`; "
            "the default cost when no --cost-csv or --cost-column is given)",
            values,
            True if higher_is_better is None else higher_is_better,
        )
    column = _loss_key(probes)
    return _history_cost(probes, column, Path(history_path), bool(higher_is_better)) if column else None


def _write_figures(probes, stops, out: Path, alpha: float, marks: Marks, task: ProbeTask) -> tuple[dict[str, Path], list[str]]:
    figures = {
        "curves": plot_curves(probes, out / "curves.png", task),
        "gap": plot_gap(probes, stops, out / "gap.png", alpha, marks, task),
    }
    notes = []
    if _has(probes, "jsdp/not_specified/male", "jsdp/not_specified/female"):
        figures["not_specified"] = plot_not_specified(probes, out / "not_specified.png")
    else:
        notes.append("not_specified.png skipped: the history has no `jsdp/not_specified/<option>` parts.")
    if _has(probes, "pro/jsdp/gap", "anti/jsdp/gap"):
        figures["pro_anti"] = plot_pro_anti(probes, out / "pro_anti.png")
    else:
        notes.append("pro_anti.png skipped: the history has no `pro/...` or `anti/...` metrics.")
    return figures, notes


# -- Markdown ------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _sudden_cell(flag: bool, record: dict[str, Any], monitor: str) -> str:
    recorded = record.get("jsdp/gap_sudden") if monitor == "jsdp/gap" else None
    text = "yes" if flag else ""
    if isinstance(recorded, bool) and recorded != flag:
        text += f" (recorded: {'yes' if recorded else 'no'})"
    return text.strip()


def _probe_row(record: dict[str, Any], sudden: str, loss_key: str | None, groups: Sequence[str]) -> list[str]:
    ci = f"{format_number(record.get('jsdp/gap_ci_low'), '+.4f')}, {format_number(record.get('jsdp/gap_ci_high'), '+.4f')}"
    mwu = f"{format_number(record.get('mwu_p/jsdp'), '.2g')} (r={format_number(record.get('mwu_rbc/jsdp'), '+.2f')})"
    row = [str(record["step"])] + [format_number(record.get(f"ar/{g}")) for g in groups]
    row += [format_number(record.get(f"jsdp/{g}"), ".4f") for g in groups]
    row += [f"{format_number(record.get('jsdp/gap'), '+.4f')} [{'n/a' if ci == 'n/a, n/a' else ci}]", mwu, sudden]
    return row + ([format_number(record.get(loss_key))] if loss_key else [])


def _probe_table(probes, summary: ReportSummary, loss_key: str | None) -> str:
    groups = summary.task.groups
    names = ["not spec." if g == "not_specified" else g.replace("_", " ") for g in groups]
    header = [
        "step",
        *(f"AR {name}" for name in names),
        *(f"JSD-P {name}" for name in names),
        "JSD-P gap [95% CI]",
        "Mann-Whitney p (r)",
        f"sudden ({summary.monitor})",
    ] + ([loss_key] if loss_key else [])
    sudden = set(summary.sudden_steps)
    rows = [_probe_row(r, _sudden_cell(int(r["step"]) in sudden, r, _local_monitor(summary)), loss_key, groups) for r in probes]
    return _table(header, rows)


def _tradeoff_section(summary: ReportSummary) -> list[str]:
    final = summary.tradeoff[-1]
    lines = [
        "## Early-stopping trade-off",
        "",
        f"Stopping at step t instead of the final probed step {summary.final_step} "
        f"(`{summary.monitor}` = {format_number(final.gap, '+.4f')}); cost from "
        f"{summary.cost.description if summary.cost else 'nothing (no lm-eval accuracy or held-out loss in the history; use --cost-csv or --cost-column)'}.",
        "",
    ]
    if final.gain is None:
        lines += [f"**The fairness gain is undefined: |gap(final)| is {format_number(abs(final.gap), 'g')}.**", ""]
    budget = summary.max_cost is not None
    header = ["step", f"{summary.monitor}", "fairness gain", "cost", "relative cost"] + (["within max cost"] if budget else [])
    rows = []
    for row in summary.tradeoff:
        cells = [
            str(row.step),
            format_number(row.gap, "+.4f"),
            format_number(row.gain, ".1%"),
            format_number(row.cost, "+.4g"),
            format_number(row.relative_cost, "+.2f") + ("%" if row.relative_cost is not None else ""),
        ]
        if summary.max_cost is not None:
            cells.append("" if row.cost is None else ("yes" if _within(row.cost, summary.max_cost) else "no"))
        if row.step == summary.recommended_step:
            cells[0] = f"**{row.step}** (recommended)"
        rows.append(cells)
    return lines + [_table(header, rows), "", _recommendation(summary), ""]


def _recommendation(summary: ReportSummary) -> str:
    fairest = f"Fairest probed step: {summary.fairest_step}." if summary.fairest_step is not None else ""
    if summary.max_cost is None:
        return f"{fairest} Give --max-cost to get a recommended stop step within a performance budget.".strip()
    if summary.recommended_step is None:
        return f"{fairest} No probed step has a known cost <= {summary.max_cost:g} and a defined gain.".strip()
    row = next(r for r in summary.tradeoff if r.step == summary.recommended_step)
    return (
        f"**Recommended stop step for max cost {summary.max_cost:g}: {row.step}** (fairness gain "
        f"{format_number(row.gain, '.1%')}, cost {format_number(row.cost, '+.4g')}). {fairest}"
    )


def _cost_definition(cost: Cost | None) -> str:
    if cost is None:
        return "- **Cost:** none available in this report."
    formula = "value(final) - value(t)" if cost.higher_is_better else "value(t) - value(final)"
    direction = "higher is better" if cost.higher_is_better else "lower is better"
    return (
        f"- **Cost** of stopping at t: {formula}, from {cost.description} ({direction}); positive: "
        "worse than the final step. Steps are matched exactly; a step without a value is n/a. "
        "**Relative cost** = cost / |value(final)|, in %."
    )


def _definitions(summary: ReportSummary, alpha: float, k: float, window: int) -> list[str]:
    minuend, subtrahend = summary.task.gap
    return (
        [
            "## Definitions",
            "",
            "- **AR** (Average Rank): mean over prompts of the correct answer token's rank among the whole "
            "vocabulary (1 + the number of tokens with a strictly larger logit). **JSD-P**: mean over prompts of "
            "the correct option's Jensen-Shannon part against the one-hot ideal answer (see PROTOCOL.md). Both: "
            "lower is better.",
            f"- **Gap** = metric({minuend}-answer prompts) - metric({subtrahend}-answer prompts); > 0: the model "
            f"does better on {subtrahend}-answer prompts.",
            f"- **Fairness gain** of stopping at t = 1 - |gap(t)| / |gap(final)| on `{summary.monitor}`, with final "
            f"= the last probed step ({summary.final_step}); 100%: perfectly fair at t, 0%: as unfair as the final "
            "step, < 0: less fair. Undefined when gap(final) is 0 or missing.",
            _cost_definition(summary.cost),
            "- **Recommended stop step**: the largest fairness gain among the steps whose cost <= --max-cost "
            "(absolute, in the cost's units; rounding-level excess allowed); steps with an n/a cost are "
            "excluded; ties go to the earliest step (less training). **Fairest step**: the largest gain at any cost.",
            "- **95% CI** of the JSD-P gap: percentile bootstrap over sentences (the sentence is the unit "
            "resampled), computed by the probe when it ran; n/a when the history does not hold it.",
            "- **Bands** in curves.png: min-max over the option-order seeds (`by_seed`); none where the history "
            "does not hold per-seed values.",
            f"- **Significance**: two-sided Mann-Whitney U test of {minuend}- vs {subtrahend}-answer per-prompt values "
            f"(correct-option JSD-P part in the table; AR too in gap.png), marked when p < {alpha:g}; "
            f"r = rank-biserial correlation 2U_{minuend} / (n_{minuend} n_{subtrahend}) - 1 (> 0: {minuend}-answer "
            "values larger, i.e. worse).",
            f"- **Sudden change** (recomputed from `{summary.monitor}`, so replayed and old histories get it too): "
            f"|gap(t) - gap(previous probe)| > k x the median of the previous {window} absolute changes, "
            f"k = {k:g}; nothing is flagged before {window} changes are known; missing values are skipped. "
            'Where the live run recorded a different `jsdp/gap_sudden`, the cell shows it as "(recorded: ...)".',
        ]
        + _axes_definition(summary)
        + [""]
    )


def _axes_definition(summary: ReportSummary) -> list[str]:
    if len(summary.axes) < 2:
        return []
    return [
        "- **Other axes**: for a step S (the recommended stop step, else the fairest probed step of the "
        "monitored gap, and each stop line's step), every probe's `<probe>/jsdp/gap` at S and at the final "
        "probed step, its fairness gain 1 - |gap(S)| / |gap(final)| (n/a when gap(final) is 0 or either is "
        "missing) and its Mann-Whitney p (`<probe>/mwu_p/jsdp`) at S; read from the probe lines, so a stop "
        "step that was not probed is n/a."
    ]


def _run_lines(summary: ReportSummary) -> list[str]:
    """Which run the report is of and, when the file holds several, the others and how to pick one."""
    if summary.run_id is None:
        return []
    if len(summary.runs) <= 1:
        return [f"Run `{summary.run_id}`, the only run in the file.", ""]
    latest = summary.run_id == summary.latest_run_id
    lines = [
        f"Run `{summary.run_id}`: {'the latest' if latest else 'not the latest'} of {len(summary.runs)} "
        "runs in this file; only its lines are in this report. The others:",
        "",
    ]
    rows = [
        [f"`{r.run_id}`", r.steps, str(r.num_probes), str(r.resumed), _when(r.start_time)]
        for r in summary.runs
        if r.run_id != summary.run_id
    ]
    lines += [_table(["run id", "steps", "probes", "resumed", "started (UTC)"], rows), ""]
    return lines + [
        f"Report another run with `fairness-callback report {summary.history} --out DIR --run-id ID` "
        "(`--list-runs` lists them; in Python: `write_report(..., run_id=ID)`).",
        "",
    ]


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) if seconds is not None else "n/a"


def _header(summary: ReportSummary, stops: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        f"# Fairness report: {summary.history.name}",
        "",
        f"Source: `{summary.history}`. {summary.num_probes} probes, steps {summary.first_step} to {summary.final_step}.",
        "",
    ] + _run_lines(summary)
    for stop in stops:
        lines += [
            f"Stop line at step {stop.get('step')} ({stop.get('reason')}, best step "
            f"{stop.get('best_step')}): {stop.get('message')}",
            "",
        ]
    if summary.sudden_steps:
        lines += [f"Sudden changes of `{summary.monitor}` at steps {', '.join(map(str, summary.sudden_steps))}.", ""]
    return lines + [f"Note: {note}" for note in summary.notes] + ([""] if summary.notes else [])


def _figures_section(summary: ReportSummary) -> list[str]:
    lines = ["## Figures", ""]
    minuend, subtrahend = summary.task.gap
    for name, caption in _FIGURES.items():
        if name in summary.figures:
            caption = caption.format(minuend=minuend, subtrahend=subtrahend) if name == "gap" else caption
            lines += [f"![{name}]({summary.figures[name].name})", "", f"*{caption}*", ""]
    return lines


def _local_monitor(summary: ReportSummary) -> str:
    """The monitor as the monitored probe's own key (``gender/jsdp/gap`` -> ``jsdp/gap``)."""
    name = summary.monitored_probe
    return summary.monitor[len(name) + 1 :] if name else summary.monitor


def _axes_intro(summary: ReportSummary) -> list[str]:
    if not summary.axes:
        return []
    return [
        f"Several probes in this run: {', '.join(f'`{a}`' for a in summary.axes)}. The probe table, curves.png, "
        f"gap.png and the trade-off are of `{summary.monitored_probe}` (the monitored gap `{summary.monitor}`); "
        'axes.png and "Other axes" below have every probe\'s JSD-P gap.',
        "",
    ]


def _axes_section(summary: ReportSummary) -> list[str]:
    """A table per step S: what stopping there for the monitored probe does to each probe's gap."""
    if len(summary.axes) < 2:
        return []
    lines = ["## Other axes", ""]
    if not summary.axis_effects:
        return lines + ["No step to stop at: the monitored gap has no defined fairness gain and there is no stop line.", ""]
    header = ["probe", "JSD-P gap at S", f"JSD-P gap at final step {summary.final_step}", "fairness gain", "Mann-Whitney p at S"]
    for effect in summary.axis_effects:
        lines += [
            f"### Stopping at step {effect.step} for {summary.monitored_probe} does this to each other axis",
            "",
            f"S = {effect.step}: {effect.label}. Fairness gain per probe = 1 - |gap(S)| / |gap(final)| of its "
            "`<probe>/jsdp/gap` (> 0: fairer than at the final step on that axis, < 0: less fair).",
            "",
        ]
        rows = [
            [
                f"`{row.axis}`"
                + (" (monitored)" if row.monitored else "")
                + (f" (`{row.key}`: it has no gap)" if row.key != GAP_KEY else ""),
                format_number(row.gap, "+.4f"),
                format_number(row.final_gap, "+.4f"),
                format_number(row.gain, ".1%"),
                format_number(row.mwu_p, ".2g"),
            ]
            for row in effect.rows
        ]
        lines += [_table(header, rows), ""]
    return lines


def _markdown(summary: ReportSummary, probes, stops, loss_key: str | None, settings: tuple[float, float, int]) -> str:
    parts = _header(summary, stops) + _axes_intro(summary) + ["## Probes", "", _probe_table(probes, summary, loss_key), ""]
    parts += _figures_section(summary) + _tradeoff_section(summary) + _axes_section(summary)
    return "\n".join(parts + _definitions(summary, *settings))


# -- the whole report ----------------------------------------------------------------------------
def _resolve_monitor(run: _Run, monitor: str, axes: Sequence[str], path: Path) -> tuple[str, list[str]]:
    """The monitor to report on and a note when it was picked here.

    A probe whose gap is never defined (only singular-"they" sentences) is reported on its
    ``jsdp/lean``. A several-probe history has no top-level ``jsdp/gap``: for that (default) monitor the report
    takes the monitor of the run-start line when it is one of the probes' keys, else the first
    probe's ``<probe>/jsdp/gap``, and says so. Any other monitor must be one probe's key.
    """
    if not axes:
        if monitor == "jsdp/gap" and not _has(run.probes, monitor) and _has(run.probes, "jsdp/lean"):
            return "jsdp/lean", [
                "--monitor `jsdp/lean`: the probe's gap is never defined (its sentences have no male- or "
                "female-answer prompts, e.g. only singular-they ones), so its lean is reported."
            ]
        return monitor, []
    if monitor == "jsdp/gap" and not _has(run.probes, monitor):
        started = next((s.get("monitor") for s in run.starts if isinstance(s.get("monitor"), str)), None)
        if started and axis_of(started, axes) and _has(run.probes, started):
            return started, [
                f"--monitor `{started}`: the run's early-stopping monitor (the history has several "
                "probes and no `jsdp/gap`; give --monitor to pick another)."
            ]
        chosen = f"{axes[0]}/jsdp/gap"
        return chosen, [
            f"--monitor `{chosen}`: the first probe's JSD-P gap (the history has several probes and no "
            f"`jsdp/gap`; give --monitor to pick another: {', '.join(f'{a}/jsdp/gap' for a in axes)})."
        ]
    if axis_of(monitor, axes) is None:
        gaps = ", ".join(_columns(run.probes, lambda key: key.endswith("gap")))
        raise ReportError(
            f"--monitor {monitor!r}: {path} holds several probes ({', '.join(axes)}); monitor one probe's gap: {gaps}"
        )
    return monitor, []


def _axis_steps(
    summary_rows: Sequence[TradeoffRow],
    recommended: int | None,
    max_cost: float | None,
    stops: Sequence[dict[str, Any]],
    monitor: str,
) -> list[tuple[int, str]]:
    """The steps S of the "Other axes" tables, with why: the recommended step (else the fairest
    probed step of ``monitor``) and each stop line's step; a step named twice gets both reasons."""
    steps: dict[int, list[str]] = {}
    if recommended is not None:
        steps.setdefault(recommended, []).append(f"the recommended stop step for max cost {max_cost:g}")
    else:
        fairest = recommend_step(summary_rows)
        if fairest is not None:
            steps.setdefault(fairest, []).append(f"the fairest probed step of `{monitor}` (no --max-cost)")
    for stop in stops:
        if isinstance(stop.get("step"), int):
            steps.setdefault(int(stop["step"]), []).append(f"the stop line's step ({stop.get('reason')})")
    return [(step, "; ".join(why)) for step, why in steps.items()]


def _cost_notes(cost: Cost | None, final_step: int, steps: set[int]) -> list[str]:
    if cost is None:
        return []
    notes = (
        [] if final_step in cost.values else [f"the cost source has no value at the final step {final_step}: every cost is n/a."]
    )
    unmatched = len(set(cost.values) - steps)
    return notes + ([f"{unmatched} step(s) of the cost source match no probe step and are not used."] if unmatched else [])


def write_report(
    history_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    cost_csv: str | os.PathLike | None = None,
    cost_column: str | None = None,
    max_cost: float | None = None,
    higher_is_better: bool | None = None,
    monitor: str = "jsdp/gap",
    alpha: float = 0.01,
    k: float = 3.0,
    window: int = 5,
    run_id: str | None = None,
    strict: bool = False,
) -> ReportSummary:
    """Write ``curves.png``, ``gap.png``, ``not_specified.png``, ``pro_anti.png`` (``axes.png`` with
    several probes) and ``report.md`` into ``out_dir``.

    The report is of one run of the history: ``run_id``'s, or the latest run's (the run of the
    file's last line); ``report.md`` names it and lists the file's other runs.

    Args:
        history_path: a ``fairness_history.jsonl``.
        out_dir: the directory to write to (created if needed).
        cost_csv: a ``step,score`` CSV (e.g. LAMBADA accuracy) for the performance cost.
        cost_column: a history column for the cost instead (default: the first lm-eval accuracy,
            ``lm_eval/<task>/acc``, else ``eval_loss`` or ``val_loss``; see :func:`resolve_cost`).
        max_cost: the largest cost allowed for the recommended stop step.
        higher_is_better: the cost values' direction (default: True for a CSV and an lm-eval
            accuracy or other lm-eval score, False for perplexities and other columns).
        monitor: the gap the fairness gain and the sudden changes are computed on. With several
            probes in the run (keys ``<probe>/jsdp/gap``) one probe's key, e.g. ``gender/jsdp/gap``;
            the default ``jsdp/gap`` then means the run's early-stopping monitor (from its run-start
            line), else the first probe's gap, and a note says which. The report then adds
            ``axes.png`` (every probe's gap) and, for the recommended step (else the fairest) and
            each stop step, a table of what stopping there does to every probe's gap.
        alpha: Mann-Whitney p below which a probe is marked significant.
        k, window: the sudden-change rule of :func:`fairness_callback.training.sudden_change.sudden_changes`.
        run_id: the run to report (see :func:`fairness_callback.training.history.history_runs`); None: the latest.
            A resumed run is reported as its last life saw it (lines past its resume step are left out).
        strict: refuse a history with an unparseable line (ValueError naming it); by default each
            such line is named in a warning and the rest is reported.

    Raises:
        ReportError: (a ValueError) a missing or empty history, an unknown run id (the message lists
            the file's runs), a bad cost CSV line, an unknown column or monitor; the message names
            the file or option.
        MissingExtraError: (an ImportError) matplotlib is not installed; before anything is read.
    """
    require("matplotlib", "report")  # one line naming the extra, before any work
    history_path = Path(history_path)
    run = _read_run(history_path, run_id, strict)
    raw, stops = run.probes, run.stops
    axes = probe_axes(raw)
    monitor, monitor_notes = _resolve_monitor(run, monitor, axes, history_path)
    _check_monitor(raw, monitor, history_path)
    # Several probes: the per-probe table and figures are of the monitored probe, read under its own keys.
    monitored = axis_of(monitor, axes)
    probes = axis_view(raw, monitored, axes) if monitored else raw
    local = monitor[len(monitored) + 1 :] if monitored else monitor
    cost = resolve_cost(raw, history_path, cost_csv, cost_column, higher_is_better)
    if max_cost is not None and cost is None:
        raise ReportError(
            f"--max-cost needs a cost: {history_path} has no lm_eval/<task>/acc or {' or '.join(LOSS_KEYS)}; "
            "give --cost-csv or --cost-column"
        )
    rows = tradeoff_table(probes, local, cost)
    flags = sudden_changes([metric_value(r, local) for r in probes], k, window)
    sudden = [int(r["step"]) for r, flag in zip(probes, flags) if flag]
    recommended = recommend_step(rows, max_cost) if max_cost is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = recorded_task(probes)
    figures, notes = _write_figures(probes, stops, out, alpha, Marks(monitor, sudden, recommended), task)
    effects = []
    if len(axes) >= 2:
        effects = [
            axes_at(raw, axes, step, monitored, why) for step, why in _axis_steps(rows, recommended, max_cost, stops, monitor)
        ]
        fairest = recommend_step(rows) if recommended is None else None
        figures["axes"] = plot_axes(raw, axes, stops, out / "axes.png", recommended, monitored, fairest)
    steps = {int(r["step"]) for r in probes}
    summary = ReportSummary(
        history=history_path,
        report=out / REPORT_FILENAME,
        figures=figures,
        num_probes=len(probes),
        first_step=int(probes[0]["step"]),
        final_step=int(probes[-1]["step"]),
        monitor=monitor,
        cost=cost,
        tradeoff=rows,
        max_cost=max_cost,
        recommended_step=recommended,
        fairest_step=recommend_step(rows),
        sudden_steps=sudden,
        notes=monitor_notes + notes + _cost_notes(cost, int(probes[-1]["step"]), steps),
        run_id=run.run_id,
        runs=run.runs,
        latest_run_id=run.latest_run_id,
        axes=tuple(axes),
        monitored_probe=monitored,
        axis_effects=effects,
        task=task,
    )
    summary.report.write_text(_markdown(summary, probes, stops, _loss_key(probes), (alpha, k, window)), encoding="utf-8")
    return summary
