"""The recorder part of the tracker: the lines a run writes, and a write that fails."""

import json
import logging
from pathlib import Path
from types import SimpleNamespace

from fairness_callback.probe.faults import ProbeFailure
from fairness_callback.training.history import SCHEMA_VERSION, read_history
from fairness_callback.training.recorder import HistoryRecorder
from fairness_callback.training.stopping import StopDecision, StopReason


def result(gap: float):
    return SimpleNamespace(metrics={"jsdp/gap": gap, "acc/male": 1.0}, by_seed={"0": {}}, info={"prefix_sharing": "tree"})


def test_no_path_writes_nothing_and_says_so(tmp_path):
    recorder = HistoryRecorder(None)
    assert recorder.open("run-a", {}, resumed=False) is None and not recorder.writing
    recorder.probe(0, result(0.1), 0.5, {}, {}, ("val_loss", None), None, has_rule=False)  # no error, no file
    assert list(tmp_path.iterdir()) == []


def test_a_run_start_probe_failure_and_stop_line(tmp_path):
    path = tmp_path / "h.jsonl"
    recorder = HistoryRecorder(path)
    assert recorder.open("run-a", {"framework": "custom", "step": 0}, resumed=False) is None
    decision = StopDecision(True, StopReason.GAP_GREW, "stopping", value=0.3, best=0.1, wait=3, best_step=0)
    recorder.probe(0, result(0.1), 0.5, {"jsdp/gap": False, "other/jsdp/gap": True}, {}, ("val_loss", 0.7), None, True)
    recorder.failure(2, ProbeFailure({1: "RuntimeError: out of memory"}, "they"))
    recorder.probe(4, result(0.3), 0.5, {"jsdp/gap": True}, {}, ("val_loss", 0.6), decision, True)
    recorder.stop(4, StopReason.GAP_GREW, "stopping at step 4", "jsdp/gap", "best", decision, None)
    lines = read_history(path)
    assert [line["event"] for line in lines] == ["run_start", "probe", "probe_failed", "probe", "stop"]
    assert all(line["run_id"] == "run-a" and line["schema"] == SCHEMA_VERSION for line in lines)
    first, failed, second, stop = lines[1:]
    assert first["jsdp/gap_sudden"] is False and "other/jsdp/gap_sudden" not in first  # only keys the probe has
    assert first["val_loss"] == 0.7 and first["stopping/decided"] is False and first["stopping/best"] is None
    assert second["stopping/best"] == 0.1 and second["stopping/wait"] == 3 and second["stopping/decided"] is True
    assert failed == {**failed, "probe": "they", "ranks": {"1": "RuntimeError: out of memory"}, "error_type": "RuntimeError"}
    assert failed["message"] == "out of memory"
    assert (stop["reason"], stop["best_step"], stop["best_value"], stop["rule"]) == ("gap_grew", 0, 0.1, "best")


def test_without_a_rule_no_stopping_keys(tmp_path):
    recorder = HistoryRecorder(tmp_path / "h.jsonl")
    recorder.open("run-a", {}, resumed=False)
    recorder.probe(0, result(0.1), 0.5, {}, {}, ("eval_loss", 1.5), None, has_rule=False)
    (probe,) = [line for line in read_history(tmp_path / "h.jsonl") if line["event"] == "probe"]
    assert probe["eval_loss"] == 1.5 and not any(key.startswith("stopping/") for key in probe)


def test_an_unwritable_path_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    problem = HistoryRecorder(blocker / "h.jsonl").open("run-a", {}, resumed=False)
    assert problem is not None and str(blocker / "h.jsonl") in problem and "history_path=None" in problem


def test_a_failed_write_is_logged_kept_and_caught_up(tmp_path, caplog):
    path = tmp_path / "h.jsonl"
    recorder = HistoryRecorder(path)
    recorder.open("run-a", {}, resumed=False)
    recorder._writer.path = Path("/dev/full")  # type: ignore[union-attr]
    with caplog.at_level(logging.ERROR, logger="fairness_callback"):
        recorder.probe(0, result(0.1), 0.5, {}, {}, ("val_loss", None), None, False)
    assert "could not be written" in caplog.text and "1 line(s) kept" in caplog.text
    recorder._writer.path = path  # type: ignore[union-attr]
    recorder.probe(2, result(0.2), 0.5, {}, {}, ("val_loss", None), None, False)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()[1:]] == [0, 2]
