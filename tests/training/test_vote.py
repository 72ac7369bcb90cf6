"""The vote part of the tracker: one process, and two real gloo ranks that wish different things."""

import json
from pathlib import Path

import pytest

from fairness_callback.training.stopping import StopDecision, StopReason
from fairness_callback.training.vote import vote
from support import torchrun


def test_one_process_keeps_its_own_wish():
    agreed = vote(StopDecision(True, StopReason.GAP_GREW, "stop"), 25, failed=False, logger_failed=True)
    assert agreed.stops and agreed.reason is StopReason.GAP_GREW
    assert (agreed.interval, agreed.failed, agreed.logger_failed) == (25, False, True)
    agreed = vote(StopDecision(False, StopReason.NOT_STOPPED, "go on"), 0, failed=False, logger_failed=False)
    assert not agreed.stops and agreed.reason is StopReason.NOT_STOPPED
    assert not vote(None, 0, failed=True, logger_failed=False).stops


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_agree_on_the_highest_wish(tmp_path):
    torchrun(Path(__file__).parents[1] / "dist" / "vote.py", str(tmp_path), tmp_path=tmp_path, timeout=120)
    rank0, rank1 = (json.loads((tmp_path / f"vote-rank{r}.json").read_text()) for r in range(2))
    assert rank0 == rank1
    assert rank0["nobody"] == {"reason": "not_stopped", "stops": False, "interval": 0, "failed": False, "logger_failed": False}
    assert rank0["rank1_stops"]["stops"] and rank0["rank1_stops"]["reason"] == "gap_grew"
    expected = StopReason.combine([StopReason.GAP_GREW, StopReason.GAP_GREW_NO_LOSS]).value
    assert rank0["both_differ"]["reason"] == expected
    assert rank0["rank1_failed"]["failed"] and not rank0["rank1_failed"]["stops"]
    assert rank0["rank0_logger"]["logger_failed"] and not rank0["rank0_logger"]["failed"]
    assert rank0["intervals"]["interval"] == 90
