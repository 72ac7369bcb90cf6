"""Training overhead of the callback: the demo's Lightning training with and without it, in one run.

Both runs are the demo's own (``fairness_callback.demo``: ``DemoConfig``, ``build``,
``lightning_runner.train_lightning``), shortened to ``--steps`` (default 300) with the demo's probe
(1,200 prompts from 120 held-out sentences, ``prefix_sharing="auto"``: the token-tree path for
this GPT-NeoX) at its default interval (every 100 steps, plus the step-0 probe: 4 probes in 300
steps). The baseline is the same run with the LightningFairnessCallback not attached: this script swaps it for a callback that does nothing (in the benchmark, not in the
package). Early stopping is off in both, so both train every step; the held-out evaluation runs in
both. Only ``train_lightning`` is timed (Trainer set-up, fit, teardown), not ``build``.

After one untimed warm-up fit (one-time costs of the first fit in a process), the runs alternate,
with probe first (A B A B ...), ``--pairs`` times, and the medians are compared:
``overhead_pct = 100 (median with - median without) / median without``.

On a shared machine a whole run's wall time, and even its median step time, drifts by 5-15% from
run to run, more than the target, so the A/B difference alone cannot settle it. So the callback's
cost is also measured in two parts that such drift does not reach:

- direct: ``callback_pct``, the seconds spent inside the callback's own hooks (every hook of
  every step: the probes, logging, the history file, the checks of whether a probe is due),
  timed in each run with the callback, over that run's wall time without them (drift scales
  both alike); ``callback_after_start_pct`` leaves out the step-0 probe, so it is the share at
  the steady interval (one probe per ``probe_every`` steps).
- indirect: ``post_probe_step_pct``, whether a probe slows the training steps after it (caches,
  allocator, threads). In one process, with the demo's model, data and AdamW in a plain loop,
  ``--blocks`` blocks of ``--block-steps`` steps alternate: a probe and then the steps, or the
  steps alone; it compares the median over blocks of each block's median step time. Times are wall clock, or
with ``--clock cpu`` this process's CPU time (with ``--threads 1`` robust to other jobs on a shared
machine). Also reported: the probe seconds the callback wrote to its history file over the
training wall seconds of the same run. The load average of the machine is printed before and
after; the last line is one JSON object.

    python benchmarks/bench_overhead.py [--steps 300] [--pairs 2] [--blocks 8] [--block-steps 30] [--threads N] [--clock wall|cpu]
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
from fairness_callback.integrations.lightning import LightningFairnessCallback
from fairness_callback.offline.plots import probe_records
from fairness_callback.training.history import read_history

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

#: The demo's setting when docs/performance.md measured it (64-token lines, a probe every 100 steps);
#: the demo now trains 40-token lines and probes every 50.
MEASURED = {"seq_len": 64, "probe_every": 100}


class TimedFairnessCallback(LightningFairnessCallback):
    """The demo's LightningFairnessCallback with a stopwatch around each of its own hooks."""

    seconds = 0.0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        TimedFairnessCallback.seconds = 0.0
        # The hooks LightningFairnessCallback itself defines (lightning_runner's name for it is patched in the run).
        for name in dir(LightningFairnessCallback):
            if name.startswith("on_") and getattr(LightningFairnessCallback, name) is not getattr(pl.Callback, name, None):
                setattr(self, name, self._timed(getattr(self, name)))

    @staticmethod
    def _timed(hook):
        def timed_hook(*args, **kwargs):
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                TimedFairnessCallback.seconds += time.perf_counter() - start

        return timed_hook


class NoProbe(pl.Callback):
    """Stands in for the LightningFairnessCallback in the baseline: takes its arguments, does nothing."""

    def __init__(self, **kwargs) -> None:
        super().__init__()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def train_once(steps: int, probe: bool, out: Path, clock) -> dict:
    """One demo training run: its time on ``clock``, its wall time and, with the probe, the history's
    probe seconds (wall)."""
    config = DemoConfig(out=out, steps=steps, early_stopping=False, **MEASURED)
    parts = build(config)
    swap = mock.patch.object(lightning_runner, "LightningFairnessCallback", TimedFairnessCallback if probe else NoProbe)
    # The demo's progress bar writes to stdout; both runs draw it, to a sink.
    with swap, open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        start, wall_start = clock(), time.perf_counter()
        lightning_runner.train_lightning(config, parts)
        seconds, wall = clock() - start, time.perf_counter() - wall_start
    probes = probe_records(read_history(parts.history_path)) if probe else []
    return {
        "seconds": seconds,
        "wall": wall,
        "probes": len(probes),
        "probe_seconds": sum(r["probe_seconds"] for r in probes),
        "start_probe_seconds": sum(r["probe_seconds"] for r in probes if r["step"] == 0),
        "callback_s": TimedFairnessCallback.seconds if probe else 0.0,
    }


def post_probe_blocks(blocks: int, block_steps: int) -> dict[str, float]:
    """Median step time (s) of blocks that follow a probe and of blocks that do not, alternating."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = build(DemoConfig(out=Path(tmp), steps=block_steps, **MEASURED))
    model = parts.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    batches = [batch for _, batch in zip(range(block_steps), torch.utils.data.DataLoader(parts.train, batch_size=32))]

    def step(batch) -> float:
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    for batch in batches[:5]:  # warm-up
        step(batch)
    medians: dict[str, list[float]] = {"after_probe": [], "alone": []}
    for block in range(2 * blocks):
        kind = "after_probe" if block % 2 == 0 else "alone"
        if kind == "after_probe":
            parts.probe.run(model)
        medians[kind].append(statistics.median(step(batch) for batch in batches))
    return {kind: statistics.median(values) for kind, values in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps of each run")
    parser.add_argument("--pairs", type=int, default=2, help="(with, without) pairs, alternating")
    parser.add_argument("--blocks", type=int, default=8, help="blocks of each kind in the post-probe step test")
    parser.add_argument("--block-steps", type=int, default=30, help="training steps per block in that test")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, with --threads 1 robust to other load",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    load_before = load_average()
    config = DemoConfig(steps=args.steps)
    print(
        f"load average before (1, 5, 15 min): {load_before}; {os.cpu_count()} CPUs, torch threads {args.threads}, {args.clock} clock"
    )
    print(
        f"demo training, {args.steps} steps of {config.batch_size} x {config.seq_len} tokens; probe every "
        f"{config.probe_every} steps and at step 0, {config.probe_sentences} held-out sentences; {args.pairs} pairs"
    )
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:
        # Untimed: the first fit in a process pays one-time costs (lazy imports, logger set-up).
        train_once(config.probe_every, False, Path(tmp) / "warm-up", CLOCKS[args.clock])
        for pair in range(args.pairs):
            for name in ("with", "without"):
                run = train_once(args.steps, name == "with", Path(tmp) / f"{name}{pair}", CLOCKS[args.clock])
                runs[name].append(run)
                print(
                    f"run {pair + 1} {name:>7} callback: {run['seconds']:7.2f} s"
                    + (f" ({run['probes']} probes, {run['probe_seconds']:.2f} s)" if name == "with" else "")
                    + f"; load average after it {load_average()}"
                )
    blocks = post_probe_blocks(args.blocks, args.block_steps)
    print(
        f"post-probe test: median step {blocks['after_probe'] * 1000:.1f} ms after a probe, "
        f"{blocks['alone'] * 1000:.1f} ms without ({args.blocks} blocks of {args.block_steps} steps each)"
    )
    load_after = load_average()

    with_s = statistics.median(r["seconds"] for r in runs["with"])
    without_s = statistics.median(r["seconds"] for r in runs["without"])
    probe_share = statistics.median(r["probe_seconds"] / r["wall"] for r in runs["with"])
    callback_share = [r["callback_s"] / (r["wall"] - r["callback_s"]) for r in runs["with"]]
    after_start = [(r["callback_s"] - r["start_probe_seconds"]) / (r["wall"] - r["callback_s"]) for r in runs["with"]]
    figures = {
        "steps": args.steps,
        "probe_every": config.probe_every,
        "probes": runs["with"][0]["probes"],
        "with_s": round(with_s, 3),
        "without_s": round(without_s, 3),
        "overhead_pct": round(100 * (with_s - without_s) / without_s, 2),
        "pair_overheads_pct": [
            round(100 * (a["seconds"] - b["seconds"]) / b["seconds"], 2) for a, b in zip(runs["with"], runs["without"])
        ],
        "probe_s": round(statistics.median(r["probe_seconds"] for r in runs["with"]), 3),
        "probe_share_pct": round(100 * probe_share, 2),
        "callback_s": round(statistics.median(r["callback_s"] for r in runs["with"]), 3),
        "callback_pct": round(100 * statistics.median(callback_share), 2),
        "callback_pcts": [round(100 * x, 2) for x in callback_share],
        "callback_after_start_pct": round(100 * statistics.median(after_start), 2),
        "post_probe_step_pct": round(100 * (blocks["after_probe"] - blocks["alone"]) / blocks["alone"], 2),
        "post_probe_step_ms": round(1000 * blocks["after_probe"], 2),
        "alone_step_ms": round(1000 * blocks["alone"], 2),
        "with_runs_s": [round(r["seconds"], 3) for r in runs["with"]],
        "without_runs_s": [round(r["seconds"], 3) for r in runs["without"]],
        "load_before": load_before,
        "load_after": load_after,
        "clock": args.clock,
        "threads": args.threads,
    }
    print(
        f"median with {with_s:.2f} s, without {without_s:.2f} s: overhead {figures['overhead_pct']:+.2f}% "
        f"(target <= 3%; pair by pair {', '.join(f'{x:+.2f}%' for x in figures['pair_overheads_pct'])}); probe seconds in the history / training wall seconds: {figures['probe_share_pct']:.2f}%"
    )
    print(
        f"seconds inside the callback's hooks over the rest of the run: {figures['callback_pct']:+.2f}% "
        f"(runs: {', '.join(f'{x:.2f}%' for x in figures['callback_pcts'])}; {figures['callback_s']} s of which "
        f"{figures['probe_s']} s probing)"
    )
    print(f"  without the step-0 probe (one probe per {config.probe_every} steps): {figures['callback_after_start_pct']:.2f}%")
    print(f"steps after a probe vs steps alone: {figures['post_probe_step_pct']:+.2f}%")
    print(f"load average after (1, 5, 15 min): {load_after}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
