"""What ``import fairness_callback`` costs over ``import torch, transformers`` alone, in one run.

Each sample is a fresh interpreter (``python -c "import ..."``, timed inside it with
``time.perf_counter`` around the import statement, so interpreter start-up is left out). The two
kinds alternate (baseline, package, baseline, package, ...) so that drift on a shared machine
reaches both alike; after ``--warmup`` untimed pairs (the page cache), ``--repeats`` pairs are
timed and the medians compared: ``ratio = median package / median baseline`` (issue #21:
at most 1.15). It also lists which of the optional or slow modules the import loaded (none is the
target). ``--before DIR`` also times ``import fairness_callback`` from another checkout (e.g.
``git worktree add DIR <commit>``) in the same rounds, imported from DIR ahead of this one.
The last line is one JSON object.

    python benchmarks/import_time.py [--repeats 5] [--warmup 1] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

BASELINE = "import torch, transformers"
PACKAGE = "import fairness_callback"
WATCH = ("torchmetrics", "scipy.stats", "matplotlib", "PIL", "lightning", "tensorboard", "wandb", "accelerate")

_TIMER = """
import json, sys, time
start = time.perf_counter()
{statement}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "loaded": [m for m in {watch!r} if m in sys.modules]}}))
"""


def sample(statement: str, path: str | None = None) -> dict:
    code = _TIMER.format(statement=statement, watch=WATCH)
    if path is not None:
        code = f"import sys; sys.path.insert(0, {path!r})\n" + code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed pairs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed pairs first (default 1)")
    parser.add_argument("--before", help="another checkout whose import fairness_callback is timed in the same rounds")
    args = parser.parse_args()
    before: list[float] = []
    load = os.getloadavg()[0]
    for _ in range(args.warmup):
        sample(BASELINE), sample(PACKAGE), args.before and sample(PACKAGE, args.before)
    baseline, package, loaded = [], [], set()
    for i in range(args.repeats):
        b, p = sample(BASELINE), sample(PACKAGE)
        baseline.append(b["seconds"])
        package.append(p["seconds"])
        loaded.update(p["loaded"])
        line = f"pair {i + 1}: {BASELINE}: {b['seconds']:.3f} s   {PACKAGE}: {p['seconds']:.3f} s"
        if args.before:
            before.append(sample(PACKAGE, args.before)["seconds"])
            line += f"   --before: {before[-1]:.3f} s"
        print(line, flush=True)
    ratio = statistics.median(package) / statistics.median(baseline)
    print(
        f"median {BASELINE}: {statistics.median(baseline):.3f} s; {PACKAGE}: {statistics.median(package):.3f} s; "
        f"ratio {ratio:.3f} (target <= 1.15); loaded by the package: {sorted(loaded) or 'none of ' + ', '.join(WATCH)}; "
        f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    extra = {}
    if before:
        extra = {
            "before_s": before,
            "median_before_s": statistics.median(before),
            "before_ratio": statistics.median(before) / statistics.median(baseline),
        }
        print(f"--before {args.before}: median {statistics.median(before):.3f} s; ratio {extra['before_ratio']:.3f}")
    import torch
    import transformers

    print(
        json.dumps(
            {
                "baseline_s": baseline,
                "package_s": package,
                "median_baseline_s": statistics.median(baseline),
                "median_package_s": statistics.median(package),
                "ratio": ratio,
                "loaded": sorted(loaded),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "python": sys.version.split()[0],
                **extra,
            }
        )
    )


if __name__ == "__main__":
    main()
