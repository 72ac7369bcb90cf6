"""Two gloo ranks vote after a probe with different wishes. Launched by tests/training/test_vote.py.

    torchrun --nproc_per_node=2 tests/dist/vote.py OUTDIR

Each case gives rank 0 and rank 1 their own decision, interval and failure flags; each rank writes
what the vote agreed, so the test can check that both agree and that the highest wish stands.
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from fairness_callback.training.stopping import StopDecision, StopReason
from fairness_callback.training.vote import vote

STOP = StopDecision(True, StopReason.GAP_GREW, "stop")
STOP_NO_LOSS = StopDecision(True, StopReason.GAP_GREW_NO_LOSS, "stop without loss")
GO_ON = StopDecision(False, StopReason.NOT_STOPPED, "go on")

#: case: ((decision, interval, failed, logger_failed) of rank 0, the same of rank 1)
CASES = {
    "nobody": ((GO_ON, 0, False, False), (None, 0, False, False)),
    "rank1_stops": ((GO_ON, 0, False, False), (STOP, 0, False, False)),
    "both_differ": ((STOP_NO_LOSS, 0, False, False), (STOP, 0, False, False)),
    "rank1_failed": ((GO_ON, 0, False, False), (None, 0, True, False)),
    "rank0_logger": ((GO_ON, 0, False, True), (GO_ON, 0, False, False)),
    "intervals": ((GO_ON, 40, False, False), (GO_ON, 90, False, False)),
}


def main(outdir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    agreed = {}
    for name, wishes in CASES.items():
        result = vote(*wishes[rank])
        agreed[name] = {
            "reason": result.reason.value,
            "stops": result.stops,
            "interval": result.interval,
            "failed": result.failed,
            "logger_failed": result.logger_failed,
        }
    (outdir / f"vote-rank{rank}.json").write_text(json.dumps(agreed))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
