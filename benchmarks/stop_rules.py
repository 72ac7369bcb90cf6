"""How often is a fairness early stop right? False stops, detections and delay of stop rules, over seeds.

Watch-only demo runs (the demo's own run, ``train_demo`` with its defaults and early stopping off:
1,000 steps at 1e-3, probed every 50; the corpus is balanced until step 500 and skewed from then
on, with a skew that also answers "male" by default; every probe kept) at skew 0 (the control: a
balanced corpus throughout) and skew 1 for seeds 0-9, and at skew 0.5 for seeds 0-4. Until step
500 a skewed run trains exactly as the control of its seed. Every history is kept under
``--out``. Then every rule of ``RULES`` (a :class:`~fairness_callback.FairnessEarlyStopping` as
a ``--stop-rule`` text) is replayed over every history offline
(``fairness_callback.offline.rule_replay``: a rule is a function of the probe stream and of the
held-out losses the probe lines carry), and one table is printed, rule by rule:

- ``false``: balanced runs it stops (x/10): every stop of a balanced run is a false alarm.
- ``early``: skewed runs it stops before the onset (a false alarm too: the gap had not grown yet).
- ``detect``: skewed runs it stops at or after the onset (x/10, and x/5 at skew 0.5).
- ``delay``: probes from the onset to the stop, median and worst over the detections.
- ``loss``: held-out loss at the stop over the run's best held-out loss, median over all stops (%).
- ``fairest``: the |gap| at the step the rule names as fairest (its best step), median over the
  skewed runs it stops; ``final``: the |gap| at the last probe of the same runs.

The onset of a skewed run is its first probe after ``skew_from_step``: the first that has seen
skewed lines (the bias starts at a known step, so that "early" and "delay" mean what they say).
Each balanced run's spread of the gap after it learns (accuracy >= 0.9 on male- and on
female-answer prompts to the end) is printed too: the control's noise a rule must not mistake for
growth; and each skew's mean gap after the drift: the effect a rule is to detect.

The last line is one JSON object. ``--quick`` (2 seeds a skew, 40 steps, 20 sentences) checks the
pipeline end to end in the test suite; its figures mean nothing. ``--replay-only`` replays the
histories already under ``--out`` (after a change of the rules, no training; runs without a
finished history are left out and named). ``--seed-offset K`` shifts every seed (fresh runs to
check a rule chosen on seeds 0-9), ``--skews`` keeps only some skews.

    python benchmarks/stop_rules.py [--out runs/stop_rules] [--jobs 2] [--quick] [--replay-only] [--keep]
                                    [--seed-offset K] [--skews 0,1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fairness_callback.offline.plots import probe_records
from fairness_callback.offline.rule_replay import replay_rule
from fairness_callback.offline.tradeoff import finite
from fairness_callback.training.history import HISTORY_FILENAME, read_run

MONITOR = "jsdp/gap"

#: name -> --stop-rule text. The README's recipe is the package default with patience=3.
RULES: dict[str, str] = {
    "readme (defaults)": "patience=3",
    "point, min_delta=0 (before #19)": "patience=3,test=point,min_delta=0,rebase_loss_drop=none",
    "demo's rule (before #19)": "patience=3,min_delta=0.01,warmup_steps=300,min_accuracy=0.25,rebase_loss_drop=none",
    "stop_on_significant_only": "patience=3,min_delta=0,stop_on_significant_only=true,rebase_loss_drop=none",
    "point d=0.01": "patience=3,min_delta=0.01,rebase_loss_drop=none",
    "point d=0.05": "patience=3,min_delta=0.05,rebase_loss_drop=none",
    "point d=0.01 acc=0.5": "patience=3,min_delta=0.01,min_accuracy=0.5,rebase_loss_drop=none",
    "point d=0.01 acc=0.9": "patience=3,min_delta=0.01,min_accuracy=0.9,rebase_loss_drop=none",
    "point d=0.02 warmup=300": "patience=3,min_delta=0.02,warmup_steps=300,rebase_loss_drop=none",
    "bootstrap a=0.05": "patience=3,test=bootstrap,alpha=0.05,min_delta=0,rebase_loss_drop=none",
    "bootstrap a=0.05 d=0.01": "patience=3,test=bootstrap,alpha=0.05,min_delta=0.01,rebase_loss_drop=none",
    "bootstrap a=0.05 d=0.01 acc=0.5": "patience=3,test=bootstrap,alpha=0.05,min_delta=0.01,min_accuracy=0.5,rebase_loss_drop=none",
    "bootstrap a=0.05 d=0 rebase=0.5": "patience=3,test=bootstrap,alpha=0.05,min_delta=0,rebase_loss_drop=0.5",
    "bootstrap a=0.05 d=0.01 rebase=0.5": "patience=3,test=bootstrap,alpha=0.05,min_delta=0.01,rebase_loss_drop=0.5",
    "bootstrap a=0.05 d=0.01 rebase=0.5 p=2": "patience=2,test=bootstrap,alpha=0.05,min_delta=0.01,rebase_loss_drop=0.5",
    "point d=0 rebase=0.5": "patience=3,min_delta=0,rebase_loss_drop=0.5",
    "point d=0.01 rebase=0.1": "patience=3,min_delta=0.01,rebase_loss_drop=0.1",
    "point d=0.01 rebase=0.2": "patience=3,min_delta=0.01,rebase_loss_drop=0.2",
    "point d=0.01 rebase=0.5": "patience=3,min_delta=0.01,rebase_loss_drop=0.5",
    "point d=0.015 rebase=0.5": "patience=3,min_delta=0.015,rebase_loss_drop=0.5",
    "point d=0.02 rebase=0.5": "patience=3,min_delta=0.02,rebase_loss_drop=0.5",
    "point d=0.01 rebase=0.5 p=2": "patience=2,min_delta=0.01,rebase_loss_drop=0.5",
}

SEEDS = {0.0: range(10), 1.0: range(10), 0.5: range(5)}
QUICK_SEEDS = {0.0: range(2), 1.0: range(2), 0.5: range(2)}
#: The demo's own run (``DemoConfig``'s defaults, ``MODEL_DEFAULTS["tiny"]``: 1,000 steps at 1e-3,
#: probed every 50; the corpus balanced until ``skew_from_step`` 500 and at the run's skew from then
#: on, so a skewed run trains exactly as its control until then), with early stopping off.
SETTINGS: dict = {}
QUICK_SETTINGS = {**SETTINGS, "steps": 40, "probe_every": 10, "probe_sentences": 20, "skew_from_step": 20}
LEARNED = 0.9


def drift_step_of(settings: dict) -> int:
    """The step from which the skewed runs' corpus is skewed (``DemoConfig.skew_from_step``)."""
    from fairness_callback.demo.run import DemoConfig

    step = DemoConfig(**settings).skew_from_step
    assert step is not None  # DemoConfig fills it from MODEL_DEFAULTS
    return step


def history_path(out: Path, skew: float, seed: int) -> Path:
    return out / f"skew{skew:g}" / f"seed{seed}" / HISTORY_FILENAME


def train(out: Path, skew: float, seed: int, threads: int, quick: bool) -> tuple[float, float]:
    """One watch-only demo run (a subprocess: its own torch threads); returns its wall and CPU seconds."""
    folder = history_path(out, skew, seed).parent
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(folder / "demo.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, "--one", str(skew), str(seed), str(folder), *(["--quick"] if quick else [])],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"demo --skew {skew} --seed {seed} failed: see {folder / 'demo.log'}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def train_one(skew: float, seed: int, folder: Path, quick: bool) -> None:
    """The demo's own run (``fairness_callback.demo.run.train_demo``) with SETTINGS, early stopping off."""
    from fairness_callback.demo.run import DemoConfig, train_demo

    train_demo(DemoConfig(out=folder, skew=skew, seed=seed, early_stopping=False, **(QUICK_SETTINGS if quick else SETTINGS)))


def finished(out: Path, skew: float, seed: int) -> bool:
    """Whether the run's demo ended (it prints where it wrote its history last)."""
    log = history_path(out, skew, seed).parent / "demo.log"
    return log.is_file() and "wrote " in log.read_text(errors="replace")


def holds_from(probes: list[dict], holds: Callable[[dict], bool]) -> int | None:
    """Index of the first probe from which ``holds`` is true of every probe to the end; None if none."""
    first = None
    for i, record in enumerate(probes):
        first = (i if first is None else first) if holds(record) else None
    return first


def onset(probes: list[dict], drift_step: int) -> int | None:
    """Index of the first probe after ``drift_step`` (the first that has seen skewed lines); None if none."""
    return next((i for i, r in enumerate(probes) if r["step"] > drift_step), None)


def reads_pronoun(record: dict) -> bool:
    return all(finite(record.get(f"acc/{g}")) and record[f"acc/{g}"] >= LEARNED for g in ("male", "female"))


def learned_at(probes: list[dict], until: int | None = None) -> int | None:
    """Step from which accuracy on male- and on female-answer prompts stays >= LEARNED to the end
    (or to step ``until``); None if never."""
    kept = [r for r in probes if until is None or r["step"] <= until]
    first = holds_from(kept, reads_pronoun)
    return None if first is None else kept[first]["step"]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def evaluate(rule: str, runs: dict[tuple[float, int], list[dict]], drift_step: int) -> dict:
    """One rule over every run: false stops, early stops, detections, delays, loss cost, fairest gap."""
    counts = {skew: {"runs": 0, "stops": 0, "early": 0, "detect": 0, "onsets": 0} for skew in SEEDS}
    delays: dict[float, list[int]] = {skew: [] for skew in SEEDS}
    losses, fairest, final = [], [], []
    for (skew, _seed), probes in runs.items():
        outcome = replay_rule(probes, rule, default_monitor=MONITOR)
        c = counts[skew]
        c["runs"] += 1
        start = onset(probes, drift_step) if skew > 0 else None
        c["onsets"] += start is not None
        if outcome.stop_step is None:
            continue
        c["stops"] += 1
        at = next(i for i, r in enumerate(probes) if r["step"] == outcome.stop_step)
        run_losses = [r.get("val_loss") for r in probes if finite(r.get("val_loss"))]
        if finite(outcome.loss_at_stop) and run_losses:
            losses.append(100 * (outcome.loss_at_stop / min(run_losses) - 1))
        if skew > 0:
            if start is not None and at >= start:
                c["detect"] += 1
                delays[skew].append(at - start)
            else:
                c["early"] += 1
            if finite(outcome.gap_at_best):
                fairest.append(abs(outcome.gap_at_best))
                final.append(abs(probes[-1][MONITOR]))
    return {
        "rule": rule,
        "false_stops": counts[0.0]["stops"],
        "balanced_runs": counts[0.0]["runs"],
        "early_stops": counts[1.0]["early"],
        "detections": counts[1.0]["detect"],
        "skewed_runs": counts[1.0]["runs"],
        "onsets": counts[1.0]["onsets"],
        "median_delay": _median(delays[1.0]),
        "worst_delay": max(delays[1.0]) if delays[1.0] else None,
        "half_early_stops": counts[0.5]["early"],
        "half_detections": counts[0.5]["detect"],
        "half_runs": counts[0.5]["runs"],
        "half_onsets": counts[0.5]["onsets"],
        "half_median_delay": _median(delays[0.5]),
        "median_loss_pct": _median(losses),
        "median_fairest_gap": _median(fairest),
        "median_final_gap": _median(final),
    }


def _show(value, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def table(rows: dict[str, dict]) -> str:
    lines = [
        f"{'rule':<42} {'false':>6} {'early':>6} {'detect':>7} {'delay':>7} {'s=0.5':>6} {'loss%':>6} {'fairest':>8} {'final':>6}"
    ]
    for name, r in rows.items():
        delay = f"{_show(r['median_delay'], 'g')}/{_show(r['worst_delay'], 'g')}"
        lines.append(
            f"{name:<42} {r['false_stops']:>3}/{r['balanced_runs']:<2} {r['early_stops']:>3}/{r['skewed_runs']:<2} "
            f"{r['detections']:>4}/{r['onsets']:<2} {delay:>7} {r['half_detections']:>3}/{r['half_onsets']:<2} "
            f"{_show(r['median_loss_pct'], '+.2f'):>6} {_show(r['median_fairest_gap'], '.4f'):>8} "
            f"{_show(r['median_final_gap'], '.4f'):>6}"
        )
    lines.append(
        "false: balanced runs stopped; early: skewed runs stopped before the onset; detect: skewed runs stopped "
        "at or after it (of those with an onset); delay: probes from the onset to the stop, median/worst; "
        "s=0.5: detections at skew 0.5; loss%: held-out loss at the stop over the run's best, median; "
        "fairest/final: |gap| at the rule's best step / at the last probe, median over the skewed runs it stops"
    )
    return "\n".join(lines)


def control_spread(runs: dict[tuple[float, int], list[dict]]) -> list[dict]:
    """Each balanced run: when it learned, and its gap's mean and standard deviation after that."""
    rows = []
    for (skew, seed), probes in sorted(runs.items()):
        if skew != 0.0:
            continue
        step = learned_at(probes)
        after = [r[MONITOR] for r in probes if step is not None and r["step"] >= step and finite(r.get(MONITOR))]
        rows.append(
            {
                "seed": seed,
                "learned_at": step,
                "probes_after": len(after),
                "mean_gap": statistics.fmean(after) if after else None,
                "sd_gap": statistics.stdev(after) if len(after) > 1 else None,
                "max_abs_gap": max(map(abs, after)) if after else None,
            }
        )
    return rows


def skew_list(text: str) -> set[float]:
    """``--skews 0,1`` -> {0.0, 1.0}; an error names the skews this benchmark runs."""
    try:
        chosen = {float(part) for part in text.split(",") if part.strip()}
    except ValueError:
        chosen = set()
    if not chosen or not chosen <= set(SEEDS):
        raise argparse.ArgumentTypeError(f"{text!r}: expected some of {', '.join(f'{s:g}' for s in SEEDS)}, comma-separated")
    return chosen


def drift_effect(runs: dict[tuple[float, int], list[dict]], drift_step: int) -> dict[str, dict]:
    """Per skew: each run's mean gap over the probes after ``drift_step``; their median and range."""
    means: dict[str, list[float]] = {}
    for (skew, _seed), probes in sorted(runs.items()):
        after = [r[MONITOR] for r in probes if r["step"] > drift_step and finite(r.get(MONITOR))]
        if after:
            means.setdefault(f"{skew:g}", []).append(statistics.fmean(after))
    return {
        skew: {"runs": len(values), "median": statistics.median(values), "low": min(values), "high": max(values)}
        for skew, values in means.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/stop_rules"))
    parser.add_argument("--jobs", type=int, default=2, help="demo runs at a time (each gets cores // jobs threads)")
    parser.add_argument("--quick", action="store_true", help="2 seeds a skew on a 40-step demo: the pipeline, not the figures")
    parser.add_argument("--replay-only", action="store_true", help="replay the histories already under --out")
    parser.add_argument("--keep", action="store_true", help="do not train again the runs that finished under --out")
    parser.add_argument(
        "--seed-offset", type=int, default=0, help="add this to every seed: fresh runs to check a rule chosen on seeds 0-9"
    )
    parser.add_argument("--skews", type=skew_list, help="only these skews, comma-separated (default 0,1,0.5)")
    parser.add_argument("--one", nargs=3, metavar=("SKEW", "SEED", "DIR"), help=argparse.SUPPRESS)  # one run, in its process
    args = parser.parse_args()
    if args.one:
        return train_one(float(args.one[0]), int(args.one[1]), Path(args.one[2]), args.quick)
    chosen_skews = args.skews
    seeds = {
        skew: range(r.start + args.seed_offset, r.stop + args.seed_offset)
        for skew, r in (QUICK_SEEDS if args.quick else SEEDS).items()
        if chosen_skews is None or skew in chosen_skews
    }
    # Balanced and skewed runs alternate, so that a benchmark cut short still has both.
    plan = sorted(((skew, seed) for skew, chosen in seeds.items() for seed in chosen), key=lambda run: (run[0] == 0.5, run[1]))
    start = time.perf_counter()
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    if not args.replay_only:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        print(
            f"stop_rules: {len(plan)} watch-only demo runs, {args.jobs} at a time, {threads} thread(s) each; "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        todo = [run for run in plan if not (args.keep and finished(args.out, *run))]
        with ThreadPoolExecutor(args.jobs) as pool:
            for (skew, seed), (took, cpu) in zip(todo, pool.map(lambda run: train(args.out, *run, threads, args.quick), todo)):
                seconds.append(took)
                cpu_seconds.append(cpu)
                print(f"  skew {skew:g} seed {seed}: {took:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    missing = [run for run in plan if not finished(args.out, *run)]  # a run still training is left out too
    if missing and not args.replay_only:
        raise RuntimeError(f"runs without a history: {missing}")
    if missing:  # --replay-only over a benchmark cut short: the table says how many runs each count is of
        print(
            f"replaying the {len(plan) - len(missing)} runs with a history; missing: "
            + ", ".join(f"skew {skew:g} seed {seed}" for skew, seed in missing)
        )
    runs = {run: probe_records(read_run(history_path(args.out, *run))) for run in plan if run not in missing}
    drift_step = drift_step_of(QUICK_SETTINGS if args.quick else SETTINGS)
    rows = {name: evaluate(rule, runs, drift_step) for name, rule in RULES.items()}
    print(table(rows))
    spread = control_spread(runs)
    for row in spread:
        print(
            f"control seed {row['seed']}: learned at step {row['learned_at']}, then {row['probes_after']} probes, "
            f"gap mean {_show(row['mean_gap'], '+.4f')} sd {_show(row['sd_gap'], '.4f')} max |gap| {_show(row['max_abs_gap'], '.4f')}"
        )
    learned = {
        f"{skew:g}": sum(learned_at(p, until=drift_step) is not None for (s, _), p in runs.items() if s == skew) for skew in seeds
    }
    learned_to_end = sum(row["learned_at"] is not None for row in spread)
    effect = drift_effect(runs, drift_step)
    for skew, row in effect.items():
        print(
            f"skew {skew}: gap over the probes after step {drift_step}, mean per run: median {_show(row['median'], '+.4f')}, "
            f"range {_show(row['low'], '+.4f')} to {_show(row['high'], '+.4f')} ({row['runs']} runs)"
        )
    print(
        f"runs that learned by step {drift_step} (accuracy >= {LEARNED} on male and female prompts from a probe to that "
        f"step): {learned}; balanced runs that learned to the end: {learned_to_end}/{len(spread)}; "
        f"load average {os.getloadavg()[0]:.2f}; total {time.perf_counter() - start:.0f} s"
    )
    print(
        json.dumps(
            {
                "runs": len(plan),
                "quick": args.quick,
                "learned": learned,
                "balanced_learned_to_end": learned_to_end,
                "drift_step": drift_step,
                "drift_effect": effect,
                "rules": rows,
                "control": spread,
                "train_seconds_median": _median(seconds),
                "train_cpu_seconds_total": sum(cpu_seconds),
                "total_seconds": time.perf_counter() - start,
            }
        )
    )


if __name__ == "__main__":
    main()
