"""Two gloo ranks run a tracker with alerts; each rank writes the alerts it sent. Launched by
tests/training/test_alerts.py.

    torchrun --nproc_per_node=2 tests/dist/alerts.py OUTDIR

Scenarios (the probe scores nothing: its gaps are scripted per rank, the tracker's collectives are real):
``rank1_stops``: only rank 1's gap grows, so only its rule fires; the vote stops both ranks.
``rank1_fails``: rank 1's probe fails at step 1 (``on_failure``). ``both_cross``: both ranks see
their gap cross the level at step 2. Every alert comes from rank 0, once.
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from support import ScriptedMetricsProbe, point_rule  # noqa: E402

from fairness_callback import FairnessTracker  # noqa: E402
from fairness_callback.training.alerts import Alerts  # noqa: E402

#: scenario: (probe of rank 0, probe of rank 1, stop rule?, Alerts arguments)
SCENARIOS = {
    "rank1_stops": (lambda: ScriptedMetricsProbe([0.01]), lambda: ScriptedMetricsProbe([0.01, 0.02, 0.03]), True, {}),
    "rank1_fails": (lambda: ScriptedMetricsProbe([0.01]), lambda: ScriptedMetricsProbe([0.01], fail_on=(1,)), False, {"on_failure": True}),
    "both_cross": (lambda: ScriptedMetricsProbe([0.0, 0.0, 0.2]), lambda: ScriptedMetricsProbe([0.0, 0.0, 0.3]), False, {"gap_level": 0.1}),
}
STEPS = 4


def main(outdir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    sent = {}
    for name, (rank0_probe, rank1_probe, rule, arguments) in SCENARIOS.items():
        calls: list = []
        tracker = FairnessTracker(
            every_n_steps=1,
            probe=(rank0_probe if rank == 0 else rank1_probe)(),
            early_stopping=point_rule(patience=2) if rule else None,
            alerts=Alerts(lambda title, text: calls.append((title, text)), min_interval_s=0, **arguments),
        )
        tracker.start(None)
        for step in range(1, STEPS + 1):
            if tracker.step(None, step).should_stop:
                break
        sent[name] = calls
    (outdir / f"alerts-rank{rank}.json").write_text(json.dumps(sent))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
