"""How often is a fairness early stop right? False stops, detections and delay of stop rules, over seeds and settings.

Watch-only demo runs (``train_demo`` with early stopping off, every probe kept, each in a
subprocess), then every rule of ``RULES`` (a ``--stop-rule`` text) replayed over every history
offline (``fairness_callback.offline.rule_replay``: a rule is a function of the probe stream and of
the held-out losses the probe lines carry). Every history is kept under ``--out``.

**Plain mode** (the default): the demo's own run (its defaults: 1,000 steps at 1e-3, probed every
50; the corpus is balanced until step 500 and skewed from then on, with a skew that also answers
"male" by default) at skew 0 (the control: a balanced corpus throughout) and skew 1 for seeds 0-9,
and at skew 0.5 for seeds 0-4, under ``--out/skew<k>/seed<n>/``. Until step 500 a skewed run trains
exactly as the control of its seed. One table, rule by rule:

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

**Matrix mode** (``--matrix``: every setting of ``MATRIX``; ``--settings a,b``: some): the demo's
run (``demo``: 10 balanced and 10 skewed seeds) and one change at a time from it (5 + 5 seeds
each): model width 64 and 256, probes every 25 and 100 steps, of 40 and 400 sentences, learning
rate 5e-4 and 2e-3, the HF Trainer, a gradual drift (the skew ramping in over 300 steps from step
500) and skew 0.5 (both against the ``demo`` setting's balanced runs, not trained again: at skew 0
they are the same runs) and a real
pretrained model (``smollm2``: SmolLM2-135M-Instruct fine-tuned with LoRA on the demo corpus, 3 + 3
seeds). Runs under ``--out/<setting>/skew<k>/seed<n>/``, each with its cost (``cost.json``). One
table per setting (``false``, ``early``, ``ramp``: the gradual drift's stops after its start and
before its end, neither early nor a detection, ``detect``, ``delay`` and ``loss%`` as above; the
onset of the gradual drift is the end of its ramp), then one summary row per rule across
settings: false stops pooled over the settings that train their balanced runs and the worst
setting's, detections pooled over the settings at skew 1 and the worst setting's (a stop during
a gradual drift's ramp counts as a detection with delay 0: the bias is already growing), the
median delay over those detections. The matrix is meant to be run in parts, over hours: ``--keep``.

The last line is one JSON object (the matrix's names its ``settings``). ``--quick`` (plain: 2 seeds a
skew, 40 steps, 20 sentences; matrix: every setting at toy size, SmolLM2 for 4 steps on a
4-sentence probe) checks the pipeline end to end in the test suite; its figures mean nothing.
``--replay-only`` replays the histories already under ``--out`` (after a change of the rules, no
training; runs without a finished history are left out and named). ``--keep`` does not train
again the runs that finished. ``--seed-offset K`` shifts every seed (fresh runs to check a rule
chosen on seeds 0-9), ``--skews`` keeps only some skews (plain mode).

    python benchmarks/stop_rules.py [--out runs/stop_rules] [--jobs 2] [--quick] [--replay-only] [--keep]
                                    [--seed-offset K] [--skews 0,1]
    python benchmarks/stop_rules.py --matrix | --settings demo,gradual [--out runs/stop_rules_matrix] [--jobs 2]
                                    [--quick] [--replay-only] [--keep] [--seed-offset K]
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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairness_callback.offline.plots import probe_records
from fairness_callback.offline.rule_replay import replay_rule
from fairness_callback.offline.tradeoff import finite
from fairness_callback.training.history import HISTORY_FILENAME, LOSS_KEYS, read_run

MONITOR = "jsdp/gap"

#: name -> --stop-rule text. The README's recipe is the package default rule with patience=3.
RULES: dict[str, str] = {
    "best (README: patience=3)": "patience=3",
    "best d=0.01": "patience=3,min_delta=0.01",
    "best d=0.02": "patience=3,min_delta=0.02",
    "best bootstrap a=0.05 d=0.01": "patience=3,test=bootstrap,alpha=0.05,min_delta=0.01",
    "cusum (defaults: h=5 k=0.5 n=4 ready=0.5)": "rule=cusum",
    "cusum ready=0": "rule=cusum,ready_accuracy=0",
    "cusum h=3": "rule=cusum,threshold=3",
    "cusum h=4": "rule=cusum,threshold=4",
    "cusum h=6": "rule=cusum,threshold=6",
    "cusum n=6": "rule=cusum,min_probes=6",
    "cusum rho=0 (no correction)": "rule=cusum,autocorrelation=0",
    "cusum k=1 h=3": "rule=cusum,allowance=1,threshold=3",
    "cusum min_shift=0": "rule=cusum,min_shift=0",
    "rank-cusum (defaults: h=3)": "rule=rank-cusum",
    "rank-cusum h=2": "rule=rank-cusum,threshold=2",
    "ewma (defaults: L=3 lambda=0.3)": "rule=ewma",
    "ewma L=2.5": "rule=ewma,threshold=2.5",
    "ewma L=3 lambda=0.5": "rule=ewma,smoothing=0.5",
}

SEEDS = {0.0: range(10), 1.0: range(10), 0.5: range(5)}
QUICK_SEEDS = {0.0: range(2), 1.0: range(2), 0.5: range(2)}
#: The demo's own run (``DemoConfig``'s defaults, ``MODEL_DEFAULTS["tiny"]``: 1,000 steps at 1e-3,
#: probed every 50; the corpus balanced until ``skew_from_step`` 500 and at the run's skew from then
#: on, so a skewed run trains exactly as its control until then), with early stopping off.
SETTINGS: dict[str, Any] = {}
QUICK_SETTINGS: dict[str, Any] = {**SETTINGS, "steps": 40, "probe_every": 10, "probe_sentences": 20, "skew_from_step": 20}
LEARNED = 0.9

Run = tuple[float, int]  # (skew, seed)


@dataclass(frozen=True)
class Setting:
    """One setting of the matrix: ``DemoConfig`` fields for its runs (``quick``: at ``--quick``), its
    seeds a skew, the skew of its skewed runs, and the setting whose balanced runs it reuses (None:
    it trains its own)."""

    name: str
    description: str
    config: dict[str, Any]
    quick: dict[str, Any]
    seeds: int = 5
    quick_seeds: int = 1
    skew: float = 1.0
    balanced_from: str | None = None

    def demo_config(self, quick: bool) -> dict[str, Any]:
        return self.quick if quick else self.config


def change(name: str, description: str, changes: dict[str, Any], quick: dict[str, Any] | None = None, **options: Any) -> Setting:
    """The demo's run with ``changes``; at ``--quick`` the quick demo with ``quick`` (default: the same changes)."""
    return Setting(
        name, description, {**SETTINGS, **changes}, {**QUICK_SETTINGS, **(changes if quick is None else quick)}, **options
    )


#: SmolLM2-135M-Instruct (``--model smollm2``) fine-tuned with LoRA (rank 8 on the attention
#: projections: a step of 8 lines costs about 2/3 of a full fine-tune's, without its first slow
#: steps) on 48-token lines (the corpus's longest is 41 of its tokens), the skew answering "male" by
#: default as the tiny demo's. The model reads the task (accuracy >= 0.5 on both genders' prompts)
#: from about step 30 at lr 5e-4. ``smollm2``: 200 steps, balanced until step 120, probed every 10
#: steps on 60 held-out sentences (120 prompts), so a rule's baseline has 8-9 probes of a model that
#: reads the task before the drift. ``smollm2-short``, the first setting (kept as measured): 100
#: steps, balanced until 60, probed every 5 on 20 sentences: the model still learning the task when
#: the drift starts, its probe of 40 prompts swinging by 0.02-0.08 (docs/stopping.md, point 8).
SMOLLM2_SHORT: dict[str, Any] = {
    "model": "smollm2",
    "lora_rank": 8,
    "steps": 100,
    "seq_len": 48,
    "lr": 5e-4,
    "probe_every": 5,
    "skew_from_step": 60,
    "male_default": 0.3,
    "referent_fraction": 0.75,
}
SMOLLM2: dict[str, Any] = {**SMOLLM2_SHORT, "steps": 200, "probe_every": 10, "skew_from_step": 120, "probe_sentences": 60}
SMOLLM2_QUICK: dict[str, Any] = {
    **SMOLLM2_SHORT,
    "steps": 4,
    "probe_every": 1,
    "skew_from_step": 2,
    "probe_sentences": 4,
    "eval_lines": 8,
}

#: The matrix: the demo's run and one change at a time from it.
MATRIX: dict[str, Setting] = {
    setting.name: setting
    for setting in (
        change(
            "demo",
            "the demo's own run (hidden 128, probe every 50 of 120 sentences, lr 1e-3, Lightning)",
            {},
            seeds=10,
            quick_seeds=2,
        ),
        change("width64", "hidden_size 64 (the demo's 128)", {"hidden_size": 64}),
        change("width256", "hidden_size 256", {"hidden_size": 256}),
        change("every25", "probe every 25 steps (the demo's 50)", {"probe_every": 25}, {"probe_every": 5}),
        change("every100", "probe every 100 steps", {"probe_every": 100}, {"probe_every": 20}),
        change("probe40", "probes of 40 held-out sentences (the demo's 120)", {"probe_sentences": 40}),
        change("probe400", "probes of 400 held-out sentences (of the corpus's 534)", {"probe_sentences": 400}),
        change("lr5e-4", "learning rate 5e-4 (the demo's 1e-3)", {"lr": 5e-4}),
        change("lr2e-3", "learning rate 2e-3", {"lr": 2e-3}),
        change("hf", "the Hugging Face Trainer (the demo's Lightning)", {"framework": "hf"}),
        change(
            "gradual",
            "the skew ramping in over 300 steps from step 500 (onset: its end, step 800), against the demo setting's "
            "balanced runs (a ramp of skew 0 trains the very same lines)",
            {"skew_ramp_steps": 300},
            {"skew_ramp_steps": 10},
            balanced_from="demo",
        ),
        change(
            "skew0.5", "skew 0.5 (the demo's 1), against the demo setting's balanced runs", {}, skew=0.5, balanced_from="demo"
        ),
        Setting(
            "smollm2-short",
            "SmolLM2-135M-Instruct, LoRA rank 8, lr 5e-4, 100 steps of 8 x 48 tokens, balanced to step 60, probe every 5 of 20 sentences",
            SMOLLM2_SHORT,
            SMOLLM2_QUICK,
            seeds=3,
        ),
        Setting(
            "smollm2",
            "SmolLM2-135M-Instruct, LoRA rank 8, lr 5e-4, 200 steps of 8 x 48 tokens, balanced to step 120, probe every 10 of 60 sentences",
            SMOLLM2,
            SMOLLM2_QUICK,
            seeds=3,
        ),
    )
}


@dataclass(frozen=True)
class Drift:
    """When the skewed runs drift: balanced to step ``start`` (``skew_from_step``), at the full skew
    from step ``end`` (``start`` plus the ramp; ``start`` without one)."""

    start: int
    end: int

    def onset(self, probes: list[dict]) -> int | None:
        """Index of the first probe after ``end`` (the first that has seen lines at the full skew); None if none."""
        return onset(probes, self.end)

    def classify(self, stop_step: int) -> str:
        """A skewed run's stop: ``early`` (at or before ``start``), ``ramp`` (after it, at or before ``end``)
        or ``detect``."""
        return "early" if stop_step <= self.start else "ramp" if stop_step <= self.end else "detect"


def drift_of(config: dict[str, Any]) -> Drift:
    """The drift of the skewed runs of ``config`` (``DemoConfig`` fields; the rest its defaults)."""
    from fairness_callback.demo.run import DemoConfig

    demo = DemoConfig(**config)
    assert demo.skew_from_step is not None  # DemoConfig fills it from MODEL_DEFAULTS
    return Drift(demo.skew_from_step, demo.skew_from_step + demo.skew_ramp_steps)


def drift_step_of(settings: dict) -> int:
    """The step from which the skewed runs' corpus is skewed (``DemoConfig.skew_from_step``)."""
    return drift_of(settings).start


def history_path(out: Path, skew: float, seed: int) -> Path:
    return out / f"skew{skew:g}" / f"seed{seed}" / HISTORY_FILENAME


def train(out: Path, skew: float, seed: int, config: dict[str, Any], threads: int) -> tuple[float, float]:
    """One watch-only demo run with ``config`` (a subprocess: its own torch threads); returns its wall and
    CPU seconds, which it also writes to the run's ``cost.json``."""
    folder = history_path(out, skew, seed).parent
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(folder / "demo.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, "--one", str(skew), str(seed), str(folder), json.dumps(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"demo --skew {skew} --seed {seed} failed: see {folder / 'demo.log'}")
    wall, cpu = time.perf_counter() - start, usage.ru_utime + usage.ru_stime
    (folder / "cost.json").write_text(json.dumps({"wall_seconds": wall, "cpu_seconds": cpu, "threads": threads}))
    return wall, cpu


def train_one(skew: float, seed: int, folder: Path, config: dict[str, Any]) -> None:
    """The demo's run (``fairness_callback.demo.run.train_demo``) with ``config``, early stopping off."""
    from fairness_callback.demo.run import DemoConfig, train_demo

    fields: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in config.items()
    }  # JSON lists
    train_demo(DemoConfig(out=folder, skew=skew, seed=seed, early_stopping=False, **fields))


def finished(out: Path, skew: float, seed: int) -> bool:
    """Whether the run's demo ended (it prints where it wrote its history last)."""
    log = history_path(out, skew, seed).parent / "demo.log"
    return log.is_file() and "wrote " in log.read_text(errors="replace")


@dataclass(frozen=True)
class Job:
    """One demo run: under ``out`` (``out/skew<k>/seed<n>``), with ``config``; ``label`` names it in the printout."""

    out: Path
    skew: float
    seed: int
    config: dict[str, Any] = field(hash=False, compare=False)
    label: str = field(default="", compare=False)

    def finished(self) -> bool:
        return finished(self.out, self.skew, self.seed)


def train_all(jobs: list[Job], parallel: int, keep: bool) -> tuple[list[float], list[float]]:
    """Train ``jobs`` (``parallel`` at a time; with ``keep`` not those that finished); their wall and CPU seconds."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    todo = [job for job in jobs if not (keep and job.finished())]
    print(
        f"stop_rules: {len(todo)} watch-only demo runs to train ({len(jobs) - len(todo)} kept), {parallel} at a time, "
        f"{threads} thread(s) each; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    with ThreadPoolExecutor(parallel) as pool:
        costs = pool.map(lambda job: train(job.out, job.skew, job.seed, job.config, threads), todo)
        for job, (took, cpu) in zip(todo, costs):
            seconds.append(took)
            cpu_seconds.append(cpu)
            print(f"  {job.label}skew {job.skew:g} seed {job.seed}: {took:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return seconds, cpu_seconds


def read_runs(jobs: list[Job], replay_only: bool) -> dict[Job, list[dict]]:
    """The probes of every job with a finished history; a missing one is an error unless ``replay_only``
    (a benchmark cut short: the runs are named and left out)."""
    missing = [job for job in jobs if not job.finished()]  # a run still training is left out too
    if missing and not replay_only:
        raise RuntimeError(f"runs without a history: {[(job.label, job.skew, job.seed) for job in missing]}")
    if missing:
        print(
            f"replaying the {len(jobs) - len(missing)} runs with a history; missing: "
            + ", ".join(f"{job.label}skew {job.skew:g} seed {job.seed}" for job in missing)
        )
    return {job: probe_records(read_run(history_path(job.out, job.skew, job.seed))) for job in jobs if job not in missing}


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


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Tally:
    """One rule over the runs of one skew: how many it stops and how (``early``, ``ramp``, ``detect``:
    :meth:`Drift.classify`, skewed runs only), the detections' delays in probes, the held-out loss at
    its stops over the run's best (%), and the |gap| at its best step and at the last probe."""

    runs: int = 0
    onsets: int = 0
    stops: int = 0
    early: int = 0
    ramp: int = 0
    detect: int = 0
    delays: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    fairest: list[float] = field(default_factory=list)
    final: list[float] = field(default_factory=list)


def loss_over_best(probes: list[dict], loss_at_stop: float | None) -> float | None:
    """Held-out loss at the stop over the run's best held-out loss, in %; None where either is missing
    (the loss is the first of ``LOSS_KEYS`` the run has: Lightning's ``val_loss``, HF's ``eval_loss``)."""
    key = next((k for k in LOSS_KEYS if any(finite(r.get(k)) for r in probes)), None)
    run_losses = [r[key] for r in probes if finite(r.get(key))] if key else []
    return 100 * (loss_at_stop / min(run_losses) - 1) if finite(loss_at_stop) and run_losses else None


def tally(rule: str, runs: dict[Run, list[dict]], drift: Drift) -> dict[float, Tally]:
    """``rule`` replayed over every run, tallied by skew."""
    tallies: dict[float, Tally] = {}
    for (skew, _seed), probes in runs.items():
        outcome = replay_rule(probes, rule, default_monitor=MONITOR)
        t = tallies.setdefault(skew, Tally())
        t.runs += 1
        start = drift.onset(probes) if skew > 0 else None
        t.onsets += start is not None
        if outcome.stop_step is None:
            continue
        t.stops += 1
        loss = loss_over_best(probes, outcome.loss_at_stop)
        if loss is not None:
            t.losses.append(loss)
        if skew == 0:
            continue
        kind = drift.classify(outcome.stop_step)
        setattr(t, kind, getattr(t, kind) + 1)
        if kind == "detect":
            assert start is not None  # the stop's own probe comes after the drift's end
            t.delays.append(next(i for i, r in enumerate(probes) if r["step"] == outcome.stop_step) - start)
        if outcome.gap_at_best is not None and finite(outcome.gap_at_best):
            t.fairest.append(abs(outcome.gap_at_best))
            t.final.append(abs(probes[-1][MONITOR]))
    return tallies


def evaluate(rule: str, runs: dict[Run, list[dict]], drift_step: int) -> dict:
    """One rule over the plain mode's runs: false stops, early stops, detections, delays, loss cost, fairest gap."""
    tallies = tally(rule, runs, Drift(drift_step, drift_step))
    balanced, skewed, half = (tallies.get(skew, Tally()) for skew in (0.0, 1.0, 0.5))
    strong = [t for skew, t in tallies.items() if skew > 0]
    return {
        "rule": rule,
        "false_stops": balanced.stops,
        "balanced_runs": balanced.runs,
        "early_stops": skewed.early,
        "detections": skewed.detect,
        "skewed_runs": skewed.runs,
        "onsets": skewed.onsets,
        "median_delay": _median(skewed.delays),
        "worst_delay": max(skewed.delays, default=None),
        "half_early_stops": half.early,
        "half_detections": half.detect,
        "half_runs": half.runs,
        "half_onsets": half.onsets,
        "half_median_delay": _median(half.delays),
        "median_loss_pct": _median([loss for t in tallies.values() for loss in t.losses]),
        "median_fairest_gap": _median([gap for t in strong for gap in t.fairest]),
        "median_final_gap": _median([gap for t in strong for gap in t.final]),
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


def control_spread(runs: dict[Run, list[dict]]) -> list[dict]:
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


def setting_list(text: str) -> list[str]:
    """``--settings demo,gradual`` -> those names, in the matrix's order; an error names the settings."""
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    if not chosen or not chosen <= set(MATRIX):
        raise argparse.ArgumentTypeError(f"{text!r}: expected some of {', '.join(MATRIX)}, comma-separated")
    return [name for name in MATRIX if name in chosen]


def drift_effect(runs: dict[Run, list[dict]], drift_step: int) -> dict[str, dict]:
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


def print_drift_effect(effect: dict[str, dict], drift_step: int) -> None:
    for skew, row in effect.items():
        print(
            f"skew {skew}: gap over the probes after step {drift_step}, mean per run: median {_show(row['median'], '+.4f')}, "
            f"range {_show(row['low'], '+.4f')} to {_show(row['high'], '+.4f')} ({row['runs']} runs)"
        )


def plain(args: argparse.Namespace) -> dict[str, Any]:
    """The plain mode: the demo's run at skews 0, 1 and 0.5, one table; its JSON figures."""
    config = QUICK_SETTINGS if args.quick else SETTINGS
    seeds = {
        skew: range(r.start + args.seed_offset, r.stop + args.seed_offset)
        for skew, r in (QUICK_SEEDS if args.quick else SEEDS).items()
        if args.skews is None or skew in args.skews
    }
    # Balanced and skewed runs alternate, so that a benchmark cut short still has both.
    plan = sorted(((skew, seed) for skew, chosen in seeds.items() for seed in chosen), key=lambda run: (run[0] == 0.5, run[1]))
    jobs = [Job(args.out, skew, seed, config) for skew, seed in plan]
    seconds, cpu_seconds = train_all(jobs, args.jobs, args.keep) if not args.replay_only else ([], [])
    runs = {(job.skew, job.seed): probes for job, probes in read_runs(jobs, args.replay_only).items()}
    drift_step = drift_step_of(config)
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
    print_drift_effect(effect, drift_step)
    print(
        f"runs that learned by step {drift_step} (accuracy >= {LEARNED} on male and female prompts from a probe to that "
        f"step): {learned}; balanced runs that learned to the end: {learned_to_end}/{len(spread)}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return {
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
    }


def setting_jobs(setting: Setting, out: Path, quick: bool, seed_offset: int) -> list[Job]:
    """The runs ``setting`` is measured on, balanced and skewed alternating: its balanced runs are those
    of ``balanced_from`` (under that setting's folder, with its config) where it names one."""
    owner = MATRIX[setting.balanced_from] if setting.balanced_from else setting
    seeds = range(seed_offset, seed_offset + (setting.quick_seeds if quick else setting.seeds))
    jobs = []
    for seed in seeds:
        jobs.append(Job(out / owner.name, 0.0, seed, owner.demo_config(quick), f"{owner.name} "))
        jobs.append(Job(out / setting.name, setting.skew, seed, setting.demo_config(quick), f"{setting.name} "))
    return jobs


def setting_row(tallies: dict[float, Tally], skew: float) -> dict[str, Any]:
    """One rule in one setting: its balanced runs' stops, its skewed runs' (at ``skew``) early, during-ramp
    and detecting stops with the detections' delays, and the held-out loss cost of all its stops."""
    balanced, skewed = tallies.get(0.0, Tally()), tallies.get(skew, Tally())
    return {
        "false_stops": balanced.stops,
        "balanced_runs": balanced.runs,
        "early_stops": skewed.early,
        "during_ramp": skewed.ramp,
        "detections": skewed.detect,
        "skewed_runs": skewed.runs,
        "onsets": skewed.onsets,
        "delays": skewed.delays,
        "median_delay": _median(skewed.delays),
        "worst_delay": max(skewed.delays, default=None),
        "median_loss_pct": _median(balanced.losses + skewed.losses),
    }


def setting_table(rows: dict[str, dict], ramp: bool) -> str:
    """One setting's table, rule by rule (a ``ramp`` column where its drift is gradual)."""
    header = (
        f"{'rule':<42} {'false':>6} {'early':>6}"
        + (f" {'ramp':>6}" if ramp else "")
        + f" {'detect':>7} {'delay':>7} {'loss%':>6}"
    )
    lines = [header]
    for name, r in rows.items():
        delay = f"{_show(r['median_delay'], 'g')}/{_show(r['worst_delay'], 'g')}"
        lines.append(
            f"{name:<42} {r['false_stops']:>3}/{r['balanced_runs']:<2} {r['early_stops']:>3}/{r['skewed_runs']:<2}"
            + (f" {r['during_ramp']:>3}/{r['skewed_runs']:<2}" if ramp else "")
            + f" {r['detections']:>4}/{r['onsets']:<2} {delay:>7} {_show(r['median_loss_pct'], '+.2f'):>6}"
        )
    return "\n".join(lines)


def run_costs(jobs: Iterable[Job]) -> dict[str, Any]:
    """The training cost of the finished ``jobs``, from their ``cost.json`` (written when they were trained)."""
    costs = []
    for job in jobs:
        path = history_path(job.out, job.skew, job.seed).parent / "cost.json"
        if path.is_file():
            costs.append(json.loads(path.read_text()))
    return {
        "runs": len(costs),
        "median_wall_seconds": _median([c["wall_seconds"] for c in costs]),
        "cpu_seconds": sum(c["cpu_seconds"] for c in costs),
    }


def measure_setting(setting: Setting, runs: dict[Job, list[dict]], quick: bool) -> dict[str, Any]:
    """Every rule over one setting's runs: its table's rows, its drift, the drift's effect and its runs' cost."""
    mine = {(job.skew, job.seed): probes for job, probes in runs.items()}
    drift = drift_of(setting.demo_config(quick))
    return {
        "description": setting.description,
        "skew": setting.skew,
        "balanced_from": setting.balanced_from,
        "drift": {"start": drift.start, "end": drift.end},
        "runs": {"balanced": sum(skew == 0 for skew, _ in mine), "skewed": sum(skew > 0 for skew, _ in mine)},
        "drift_effect": drift_effect(mine, drift.end),
        "cost": run_costs(job for job in runs if job.out.name == setting.name),
        "rules": {name: setting_row(tally(rule, mine, drift), setting.skew) for name, rule in RULES.items()},
    }


def print_setting(name: str, figures: dict[str, Any]) -> None:
    drift, runs, cost = figures["drift"], figures["runs"], figures["cost"]
    onset = f"drift at step {drift['start']}" + (f", ramping in to step {drift['end']}" if drift["end"] > drift["start"] else "")
    print(
        f"\n== {name}: {figures['description']}; {runs['balanced']} balanced and {runs['skewed']} runs at skew "
        f"{figures['skew']:g}, {onset} =="
    )
    print(setting_table(figures["rules"], ramp=drift["end"] > drift["start"]))
    print_drift_effect(figures["drift_effect"], drift["end"])
    print(
        f"cost of its own runs: {cost['runs']} trained, median {_show(cost['median_wall_seconds'], '.0f')} s wall each, "
        f"{cost['cpu_seconds']:.0f} s CPU in all"
    )


def summary_row(rule: str, per_setting: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One rule across settings: false stops pooled over the settings that train their own balanced runs
    (a reused control counts once) and the worst setting's; detections pooled over the settings at skew 1
    and the worst setting's (a stop during a gradual drift's ramp is a detection of a bias already
    growing, with delay 0); the median delay over those detections."""
    own = {name: f["rules"][rule] for name, f in per_setting.items() if f["balanced_from"] is None}
    strong = {name: f["rules"][rule] for name, f in per_setting.items() if f["skew"] == 1.0}
    worst_false = max(
        (n for n in own if own[n]["balanced_runs"]), key=lambda n: own[n]["false_stops"] / own[n]["balanced_runs"], default=None
    )
    caught = {name: r["detections"] + r["during_ramp"] for name, r in strong.items()}
    worst_detect = min((n for n in strong if strong[n]["onsets"]), key=lambda n: caught[n] / strong[n]["onsets"], default=None)
    return {
        "false_stops": sum(r["false_stops"] for r in own.values()),
        "balanced_runs": sum(r["balanced_runs"] for r in own.values()),
        "worst_false": None
        if worst_false is None
        else {"setting": worst_false, **_pick(own[worst_false], "false_stops", "balanced_runs")},
        "detections": sum(caught.values()),
        "onsets": sum(r["onsets"] for r in strong.values()),
        "worst_detections": None
        if worst_detect is None
        else {"setting": worst_detect, "detections": caught[worst_detect], "onsets": strong[worst_detect]["onsets"]},
        "median_delay": _median([d for r in strong.values() for d in r["delays"] + [0] * r["during_ramp"]]),
    }


def _pick(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: row[key] for key in keys}


def summary_table(rows: dict[str, dict[str, Any]]) -> str:
    def worst(cell: dict[str, Any] | None, x: str, n: str) -> str:
        return "-" if cell is None else f"{cell[x]}/{cell[n]} {cell['setting']}"

    lines = [f"{'rule':<42} {'false':>7} {'worst false':>20} {'detect':>7} {'worst detect':>20} {'delay':>5}"]
    for name, r in rows.items():
        lines.append(
            f"{name:<42} {r['false_stops']:>3}/{r['balanced_runs']:<3} {worst(r['worst_false'], 'false_stops', 'balanced_runs'):>20} "
            f"{r['detections']:>3}/{r['onsets']:<3} {worst(r['worst_detections'], 'detections', 'onsets'):>20} "
            f"{_show(r['median_delay'], 'g'):>5}"
        )
    lines.append(
        "false: balanced runs stopped, pooled over the settings that train their own (worst: the setting with the "
        "largest share); detect: skewed runs stopped after the onset (or during a gradual drift's ramp, delay 0), "
        "pooled over the settings at skew 1 (worst: the smallest share); delay: probes from the onset to the stop, "
        "median over those detections"
    )
    return "\n".join(lines)


def matrix(args: argparse.Namespace) -> dict[str, Any]:
    """The matrix mode: the chosen settings' runs (shared runs once), one table per setting and a summary."""
    names = args.settings or list(MATRIX)
    jobs = {name: setting_jobs(MATRIX[name], args.out, args.quick, args.seed_offset) for name in names}
    unique = list(dict.fromkeys(job for setting in jobs.values() for job in setting))
    if not args.replay_only:
        train_all(unique, args.jobs, args.keep)
    runs = read_runs(unique, args.replay_only)
    per_setting = {
        name: measure_setting(MATRIX[name], {job: runs[job] for job in jobs[name] if job in runs}, args.quick) for name in names
    }
    for name, figures in per_setting.items():
        print_setting(name, figures)
    summary = {rule: summary_row(rule, per_setting) for rule in RULES}
    print(f"\n== every setting ({', '.join(names)}) ==")
    print(summary_table(summary))
    return {"settings": names, "quick": args.quick, "runs": len(runs), "per_setting": per_setting, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, help="where the runs are kept (default runs/stop_rules; runs/stop_rules_matrix with --matrix)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="demo runs at a time (each gets cores // jobs threads)")
    parser.add_argument(
        "--quick", action="store_true", help="toy runs (plain: 2 seeds a skew, 40 steps): the pipeline, not the figures"
    )
    parser.add_argument("--replay-only", action="store_true", help="replay the histories already under --out")
    parser.add_argument("--keep", action="store_true", help="do not train again the runs that finished under --out")
    parser.add_argument(
        "--seed-offset", type=int, default=0, help="add this to every seed: fresh runs to check a rule chosen on seeds 0-9"
    )
    parser.add_argument("--skews", type=skew_list, help="only these skews, comma-separated (default 0,1,0.5; plain mode)")
    parser.add_argument("--matrix", action="store_true", help="every setting of the matrix")
    parser.add_argument(
        "--settings", type=setting_list, help=f"only these settings of the matrix, comma-separated ({', '.join(MATRIX)})"
    )
    parser.add_argument(
        "--one", nargs=4, metavar=("SKEW", "SEED", "DIR", "CONFIG"), help=argparse.SUPPRESS
    )  # one run, in its process
    args = parser.parse_args()
    if args.one:
        return train_one(float(args.one[0]), int(args.one[1]), Path(args.one[2]), json.loads(args.one[3]))
    in_matrix = args.matrix or args.settings is not None
    if in_matrix and args.skews is not None:
        parser.error("--skews is for the plain mode: a setting of the matrix has its own skews")
    args.out = args.out or Path("runs/stop_rules_matrix" if in_matrix else "runs/stop_rules")
    start = time.perf_counter()
    figures = matrix(args) if in_matrix else plain(args)
    seconds = time.perf_counter() - start
    print(f"total {seconds:.0f} s")
    print(json.dumps({**figures, "total_seconds": seconds}))


if __name__ == "__main__":
    main()
