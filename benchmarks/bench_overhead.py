"""Training overhead of the callback: the demo's Lightning training with and without it, in one run.

Both runs are the demo's own (``fairness_callback.demo``: ``DemoConfig``, ``build``,
``lightning_runner.train_lightning``), shortened to ``--steps`` (default 300) with the demo's probe
(1,200 prompts from 120 held-out sentences, ``prefix_sharing="auto"``: the token-tree path for
this GPT-NeoX) at its default interval (every 100 steps, plus the step-0 probe: 4 probes in 300
steps). The baseline is the same run with the FairnessCallback not attached: this script swaps it for a callback that does nothing (in the benchmark, not in the
package). Early stopping is off in both, so both train every step; the held-out evaluation runs in
both. Only ``train_lightning`` is timed (Trainer set-up, fit, teardown), not ``build``.

After one untimed warm-up fit (one-time costs of the first fit in a process), the runs alternate,
with probe first (A B A B ...), ``--pairs`` times, and the medians are compared:
``overhead_pct = 100 (median with - median without) / median without``. Times are wall clock, or
with ``--clock cpu`` this process's CPU time (with ``--threads 1`` robust to other jobs on a shared
machine). Also reported: the probe seconds the callback wrote to its history file over the
training wall seconds of the same run. The load average of the machine is printed before and
after; the last line is one JSON object.

    python benchmarks/bench_overhead.py [--steps 300] [--pairs 2] [--threads N] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import lightning.pytorch as pl
import torch

from fairness_callback.demo import lightning_runner
from fairness_callback.demo.run import DemoConfig, build
from fairness_callback.history import read_history
from fairness_callback.plots import probe_records

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class NoProbe(pl.Callback):
    """Stands in for the FairnessCallback in the baseline: takes its arguments, does nothing."""

    def __init__(self, **kwargs) -> None:
        super().__init__()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def train_once(steps: int, probe: bool, out: Path, clock) -> dict:
    """One demo training run: its time on ``clock``, its wall time and, with the probe, the history's
    probe seconds (wall)."""
    config = DemoConfig(out=out, steps=steps, early_stopping=False)
    parts = build(config)
    swap = contextlib.nullcontext() if probe else mock.patch.object(lightning_runner, "FairnessCallback", NoProbe)
    # The demo's progress bar writes to stdout; both runs draw it, to a sink.
    with swap, open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        start, wall_start = clock(), time.perf_counter()
        lightning_runner.train_lightning(config, parts)
        seconds, wall = clock() - start, time.perf_counter() - wall_start
    probes = probe_records(read_history(parts.history_path)) if probe else []
    return {"seconds": seconds, "wall": wall, "probes": len(probes), "probe_seconds": sum(r["probe_seconds"] for r in probes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps of each run")
    parser.add_argument("--pairs", type=int, default=2, help="(with, without) pairs, alternating")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time, with --threads 1 robust to other load")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    load_before = load_average()
    config = DemoConfig(steps=args.steps)
    print(f"load average before (1, 5, 15 min): {load_before}; {os.cpu_count()} CPUs, torch threads {args.threads}, {args.clock} clock")
    print(f"demo training, {args.steps} steps of {config.batch_size} x {config.seq_len} tokens; probe every "
          f"{config.probe_every} steps and at step 0, {config.probe_sentences} held-out sentences; {args.pairs} pairs")
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed: the first fit in a process pays one-time costs (lazy imports, logger set-up).
        train_once(config.probe_every, False, Path(tmp) / "warm-up", CLOCKS[args.clock])
        for pair in range(args.pairs):
            for name in ("with", "without"):
                run = train_once(args.steps, name == "with", Path(tmp) / f"{name}{pair}", CLOCKS[args.clock])
                runs[name].append(run)
                print(f"run {pair + 1} {name:>7} callback: {run['seconds']:7.2f} s"
                      + (f" ({run['probes']} probes, {run['probe_seconds']:.2f} s)" if name == "with" else "")
                      + f"; load average after it {load_average()}")
    load_after = load_average()

    with_s = statistics.median(r["seconds"] for r in runs["with"])
    without_s = statistics.median(r["seconds"] for r in runs["without"])
    probe_share = statistics.median(r["probe_seconds"] / r["wall"] for r in runs["with"])
    figures = {
        "steps": args.steps,
        "probe_every": config.probe_every,
        "probes": runs["with"][0]["probes"],
        "with_s": round(with_s, 3),
        "without_s": round(without_s, 3),
        "overhead_pct": round(100 * (with_s - without_s) / without_s, 2),
        "pair_overheads_pct": [round(100 * (a["seconds"] - b["seconds"]) / b["seconds"], 2)
                               for a, b in zip(runs["with"], runs["without"])],
        "probe_s": round(statistics.median(r["probe_seconds"] for r in runs["with"]), 3),
        "probe_share_pct": round(100 * probe_share, 2),
        "with_runs_s": [round(r["seconds"], 3) for r in runs["with"]],
        "without_runs_s": [round(r["seconds"], 3) for r in runs["without"]],
        "load_before": load_before,
        "load_after": load_after,
        "clock": args.clock,
        "threads": args.threads,
    }
    print(f"median with {with_s:.2f} s, without {without_s:.2f} s: overhead {figures['overhead_pct']:+.2f}% "
          f"(target <= 3%; pair by pair {', '.join(f'{x:+.2f}%' for x in figures['pair_overheads_pct'])}); probe seconds in the history / training wall seconds: {figures['probe_share_pct']:.2f}%")
    print(f"load average after (1, 5, 15 min): {load_after}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
