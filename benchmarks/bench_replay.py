"""Replay throughput against the number of ranks: checkpoints per minute with 1, 2 and 4 processes.

    python benchmarks/bench_replay.py                  # 12 checkpoints of a 4-layer GPT-NeoX, 1 / 2 / 4 ranks
    python benchmarks/bench_replay.py --quick          # 4 tiny checkpoints, 1 / 2 ranks (the test suite's run)

Saves a series of checkpoints, then replays it into a fresh history once per rank count: one
process (``python -m fairness_callback replay``) and ``torchrun --nproc_per_node N`` (gloo on the
CPU, one intra-op thread per rank so that N ranks use N cores). Every replay is timed whole, from
launch to exit (the start-up of N interpreters included), and its probe lines are checked against
the one-process replay's, value for value. Prints a table, the speed-up over one process, and a
JSON line. On a machine with C cores, more than C ranks only share them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMES = {"time", "probe_seconds", "load_seconds", "run_id"}


def save_series(root: Path, count: int, layers: int, hidden: int) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from fairness_callback.demo.tiny_model import tiny_gpt_neox
    from support import make_tokenizer

    tokenizer = make_tokenizer()
    for i in range(count):
        folder = root / f"checkpoint-{100 * i}"
        tiny_gpt_neox(len(tokenizer), hidden_size=hidden, num_layers=layers, seed=i).save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay(series: Path, history: Path, ranks: int, seeds: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    tail = ["-m", "fairness_callback", "replay", str(series), "--history", str(history), "--seeds", seeds]
    if ranks == 1:
        command = [sys.executable, *tail]
    else:
        command = [
            str(Path(sys.executable).parent / "torchrun"),
            f"--nproc_per_node={ranks}",
            "--master_port",
            str(free_port()),
            *tail,
        ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"replay with {ranks} rank(s) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def probe_lines(history: Path) -> list[dict]:
    from fairness_callback.training.history import read_history

    return [{k: v for k, v in r.items() if k not in TIMES} for r in read_history(history) if r["event"] == "probe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 tiny checkpoints, 1 and 2 ranks")
    parser.add_argument("--checkpoints", type=int, default=12)
    parser.add_argument("--ranks", default="1,2,4", help="comma-separated rank counts; 1 is the baseline")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    if args.quick:
        args.checkpoints, args.ranks, args.layers, args.hidden, args.seeds = 4, "1,2", 2, 64, "0"
    counts = sorted({1, *(int(r) for r in args.ranks.split(","))})
    work = Path(tempfile.mkdtemp(prefix="bench_replay_"))
    try:
        save_series(work / "run", args.checkpoints, args.layers, args.hidden)
        rows, reference = [], None
        print(
            f"{args.checkpoints} checkpoints (GPT-NeoX, {args.layers} layers, hidden {args.hidden}), seeds {args.seeds}, {os.cpu_count()} CPU cores"
        )
        print(f"{'ranks':>5} {'seconds':>8} {'ckpt/min':>9} {'speed-up':>9}")
        for ranks in counts:
            history = work / f"h{ranks}.jsonl"
            seconds = replay(work / "run", history, ranks, args.seeds)
            lines = probe_lines(history)
            reference = reference if reference is not None else lines
            same = lines == reference
            row = {
                "ranks": ranks,
                "seconds": round(seconds, 2),
                "per_minute": round(60 * args.checkpoints / seconds, 2),
                "same_lines": same,
            }
            row["speedup"] = round(rows[0]["seconds"] / seconds, 2) if rows else 1.0
            rows.append(row)
            print(f"{ranks:>5} {row['seconds']:>8} {row['per_minute']:>9} {row['speedup']:>9}{'' if same else '  LINES DIFFER'}")
        print(json.dumps({"checkpoints": args.checkpoints, "cores": os.cpu_count(), "rows": rows}))
        if not all(row["same_lines"] for row in rows):
            raise SystemExit("the replays' probe lines differ from the one-process replay's")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
