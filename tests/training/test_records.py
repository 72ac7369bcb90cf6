"""The history's record classes: one writer, one reader, old lines still read, wrong lines named."""

import json
import math

import pytest

from fairness_callback.training.history import HistoryWriter, read_history, read_records
from fairness_callback.training.records import (
    SCHEMA_VERSION,
    FailureRecord,
    ProbeRecord,
    RunStartRecord,
    StopRecord,
    parse_record,
)


def test_each_record_round_trips_through_the_file(tmp_path):
    path = tmp_path / "h.jsonl"
    writer = HistoryWriter(path, "run-a")
    written = [
        writer.start_run({"framework": "hf", "step": 0}),
        ProbeRecord(
            step=0,
            time=1.5,
            probe_seconds=0.25,
            prefix_sharing="tree",
            values={"jsdp/gap": 0.1, "eval_loss": 2.0, "jsdp/gap_sudden": False},
            by_seed={"jsdp/gap": [0.1, 0.2]},
            units={"jsdp/gap": {"v": [1]}},
        ),
        FailureRecord(
            step=2, time=2.0, probe="bbq", ranks={"1": "RuntimeError: boom"}, error_type="RuntimeError", message="boom"
        ),
        StopRecord(step=4, reason="gap_grew", message="stopping", best_step=0, best_value=0.1, monitor="jsdp/gap"),
    ]
    for record in written[1:]:
        writer.append(record)
    read = read_records(path)
    assert [type(r) for r in read] == [RunStartRecord, ProbeRecord, FailureRecord, StopRecord]
    # the writer stamps its run id; everything else comes back as written
    assert read == [r if r.run_id == "run-a" else type(r)(**{**r.__dict__, "run_id": "run-a"}) for r in written]
    assert read[0].step == 0 and read[0].info == {"framework": "hf", "step": 0}
    assert read[1].get("jsdp/gap") == 0.1 and read[1].get("nope", 7) == 7
    assert [line["event"] for line in read_history(path)] == ["run_start", "probe", "probe_failed", "stop"]
    assert all(line["schema"] == SCHEMA_VERSION and line["run_id"] == "run-a" for line in read_history(path))


def test_nan_is_written_as_null_and_reads_back_as_none(tmp_path):
    path = tmp_path / "h.jsonl"
    HistoryWriter(path).append(ProbeRecord(step=0, values={"jsdp/gap": math.nan}, by_seed={"jsdp/gap": [math.inf, 0.5]}))
    line = json.loads(path.read_text())
    assert line["jsdp/gap"] is None and line["by_seed"] == {"jsdp/gap": [None, 0.5]}
    assert read_records(path)[0].get("jsdp/gap") is None


def test_lines_of_the_first_histories_still_read(tmp_path):
    # 0.1.0 wrote probe lines without event, run_id or schema; stops without monitor or rule
    path = tmp_path / "old.jsonl"
    path.write_text(
        json.dumps({"step": 0, "jsdp/gap": 0.1, "by_seed": {}})
        + "\n"
        + json.dumps({"event": "stop", "step": 0, "reason": "gap_grew"})
        + "\n"
    )
    probe, stop = read_records(path)
    assert isinstance(probe, ProbeRecord) and probe.step == 0 and probe.run_id is None and probe.schema == 1
    assert isinstance(stop, StopRecord) and stop.monitor is None and stop.message == ""


@pytest.mark.parametrize(
    "line, problem",
    [
        ({"event": "probe", "step": "ten"}, "'step' must be an integer, got 'ten'"),
        ({"event": "probe", "step": 1.5}, "'step' must be an integer"),
        ({"event": "probe"}, "'step' must be an integer, got None"),
        ({"event": "probe", "step": 0, "time": "noon"}, "'time' must be a number or null"),
        ({"event": "probe", "step": 0, "by_seed": [1]}, "'by_seed' must be an object or null, got list"),
        ({"event": "stop", "step": 0}, "a stop line needs its 'reason'"),
        ({"event": "stop", "step": 0, "reason": "gap_grew", "best_step": "x"}, "'best_step' must be an integer, got 'x'"),
        ({"event": "party", "step": 0}, "unknown event 'party'; known: run_start, probe, probe_failed, stop"),
    ],
)
def test_a_wrong_line_is_named_by_file_and_line(tmp_path, line, problem):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"step": 0}) + "\n" + json.dumps(line) + "\n" + json.dumps({"step": 2}) + "\n")
    with pytest.raises(ValueError, match=rf"h\.jsonl, line 2: {problem}"):
        read_records(path)
    assert [r["step"] for r in read_history(path, strict=False)] == [0, 2]  # skipped with a warning


def test_records_refuse_keys_their_fields_own():
    with pytest.raises(ValueError, match=r"may not use the keys \['step'\]"):
        ProbeRecord(step=0, values={"step": 3})
    with pytest.raises(ValueError, match="may not set event, run_id"):
        RunStartRecord(info={"event": "x", "run_id": "y"})
    with pytest.raises(ValueError, match="newer fairness-callback"):
        parse_record({"event": "probe", "step": 0, "schema": SCHEMA_VERSION + 1}, "here")


def test_the_writer_takes_records_only(tmp_path):
    with pytest.raises(TypeError, match="takes a record of fairness_callback.training.records .*got dict"):
        HistoryWriter(tmp_path / "h.jsonl").append({"event": "probe", "step": 0})  # type: ignore[arg-type]
