"""The history file: appended, flushed, readable after a crash."""

import json
import math

import pytest

from fairness_callback.training.history import HistoryWriter, read_history
from fairness_callback.training.records import parse_record


def test_append_writes_one_flushed_line_each(tmp_path):
    path = tmp_path / "sub" / "h.jsonl"
    writer = HistoryWriter(path)
    writer.append(parse_record({"event": "probe", "step": 0, "jsdp/gap": 0.1}))
    assert path.read_text().count("\n") == 1  # on disk before the next append
    writer.append(parse_record({"event": "probe", "step": 10, "jsdp/gap": math.nan}))
    records = read_history(path)
    assert [r["step"] for r in records] == [0, 10]
    assert records[1]["jsdp/gap"] is None  # NaN is stored as null, valid JSON


def test_every_line_names_its_schema_and_a_newer_one_is_refused(tmp_path):
    from fairness_callback.training.history import SCHEMA_VERSION

    path = tmp_path / "h.jsonl"
    HistoryWriter(path, "run-a").append(parse_record({"event": "probe", "step": 0}))
    assert json.loads(path.read_text())["schema"] == SCHEMA_VERSION == 1
    # a line of a version without the key (every history before it) reads as version 1
    with path.open("a") as handle:
        handle.write(json.dumps({"event": "probe", "step": 1, "run_id": "run-a"}) + "\n")
    assert [r.get("schema") for r in read_history(path)] == [1, 1]
    with path.open("a") as handle:
        handle.write(json.dumps({"event": "probe", "step": 2, "run_id": "run-a", "schema": 2}) + "\n")
        handle.write(json.dumps({"event": "probe", "step": 3, "run_id": "run-a"}) + "\n")
    for strict in (True, False):
        with pytest.raises(
            ValueError,
            match=r"h\.jsonl, line 3: written in history schema 2 by a newer fairness-callback; this one reads schema 1",
        ):
            read_history(path, strict=strict)


def test_a_new_writer_appends(tmp_path):
    path = tmp_path / "h.jsonl"
    HistoryWriter(path).append(parse_record({"step": 0}))
    HistoryWriter(path).append(parse_record({"step": 1}))
    assert [r["step"] for r in read_history(path)] == [0, 1]


def test_torn_last_line_is_skipped_and_cut_before_appending(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"step": 0}) + "\n" + '{"step": 1, "jsdp/ga')
    assert [r["step"] for r in read_history(path)] == [0]
    HistoryWriter(path).append(parse_record({"step": 2}))
    assert [r["step"] for r in read_history(path)] == [0, 2]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"h.jsonl, line 2: not a JSON object"):
        read_history(path)
    path.write_text('{"step": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        read_history(path)


# -- runs ----------------------------------------------------------------------------------------
import re  # noqa: E402

from fairness_callback.offline.plots import probe_records  # noqa: E402
from fairness_callback.training.history import (  # noqa: E402
    history_runs,
    latest_run_id,
    new_run_id,
    read_run,
    select_run,
)


def probe(step, gap=0.0, **extra):
    return {"event": "probe", "step": step, "jsdp/gap": gap, "time": 1000.0 + step, **extra}


def write_run(path, run_id, steps, *, resumed=False, info=None, stop=False, gap=0.0):
    writer = HistoryWriter(path, run_id)
    writer.start_run(info or {"framework": "test"}, resumed=resumed)
    for step in steps:
        writer.append(parse_record(probe(step, gap)))
    if stop:
        writer.append(parse_record({"event": "stop", "step": steps[-1], "reason": "gap_grew"}))
    return writer.run_id


def test_new_run_id_is_unique_and_sorts_by_start_time(monkeypatch):
    import fairness_callback.training.history as history

    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200 and all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
    monkeypatch.setattr(history.time, "time", lambda: 1_700_000_000.0)
    early = new_run_id()
    monkeypatch.setattr(history.time, "time", lambda: 1_700_000_001.0)
    assert early.startswith("20231114-221320-") and early < new_run_id()


def test_writer_stamps_its_run_id_and_writes_run_start(tmp_path):
    path = tmp_path / "h.jsonl"
    writer = HistoryWriter(path, "run-a")
    start = writer.start_run({"framework": "hf", "num_prompts": 40, "every_n_steps": 4})
    writer.append(parse_record({"event": "probe", "step": 0, "run_id": "someone-else"}))  # the writer's id wins
    first, second = read_history(path)
    assert first == start.to_line() and first["event"] == "run_start" and first["run_id"] == "run-a"
    assert first["resumed"] is False and first["framework"] == "hf" and first["every_n_steps"] == 4
    assert isinstance(first["time"], float)
    assert second["run_id"] == "run-a"
    HistoryWriter(path, "run-a").start_run(resumed=True)
    assert read_history(path)[-1]["resumed"] is True
    fresh = HistoryWriter(path)  # no id: a new run
    assert fresh.run_id != "run-a" and re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", fresh.run_id)
    with pytest.raises(ValueError, match="may not set run_id, time"):
        writer.start_run({"time": 0, "run_id": "x"})
    with pytest.raises(ValueError, match="non-empty string"):
        HistoryWriter(path, "")


def test_two_runs_latest_by_default_each_by_id(tmp_path):
    path = tmp_path / "h.jsonl"
    write_run(path, "run-a", [0, 4, 8, 12], stop=True, gap=0.1)
    write_run(path, "run-b", [0, 4], gap=0.2)
    records = read_history(path)
    assert len(records) == 9  # read_history still gives every line
    latest = select_run(records)
    assert {r["run_id"] for r in latest} == {"run-b"} and [r.get("step") for r in latest] == [None, 0, 4]
    assert [r.get("step") for r in select_run(records, "run-a")] == [None, 0, 4, 8, 12, 12]
    assert [r["step"] for r in read_run(path, "run-a") if r["event"] == "probe"] == [0, 4, 8, 12]
    assert [r["jsdp/gap"] for r in probe_records(records)] == [0.2, 0.2]  # not merged with run-a's step 0 and 4
    assert [r["step"] for r in probe_records(records, "run-a")] == [0, 4, 8, 12]
    runs = history_runs(records)
    assert [(r.run_id, r.num_probes, r.first_step, r.last_step, r.steps) for r in runs] == [
        ("run-a", 4, 0, 12, "0-12"),
        ("run-b", 2, 0, 4, "0-4"),
    ]
    assert runs[0].info == {"framework": "test"} and runs[0].start_time == records[0]["time"]
    with pytest.raises(ValueError) as error:
        select_run(records, "run-c", source=str(path))
    message = str(error.value)
    assert message.startswith(f"{path}: no run 'run-c'; its runs: ")
    assert "run-a (steps 0-12, 4 probe(s))" in message and "run-b (steps 0-4, 2 probe(s))" in message


def test_a_resumed_run_is_one_run_and_latest_is_the_last_written(tmp_path):
    path = tmp_path / "h.jsonl"
    write_run(path, "run-a", [0, 4, 8])
    write_run(path, "run-b", [0])
    write_run(path, "run-a", [4, 8, 12], resumed=True, gap=0.3)  # resumed from checkpoint-4
    records = read_history(path)
    assert latest_run_id(records) == "run-a"
    runs = {r.run_id: r for r in history_runs(records)}
    assert list(runs) == ["run-a", "run-b"]  # order of first appearance
    assert runs["run-a"].resumed == 1 and runs["run-a"].num_probes == 4 and runs["run-a"].steps == "0-12"
    probes = probe_records(records)
    assert [r["step"] for r in probes] == [0, 4, 8, 12] and probes[1]["jsdp/gap"] == 0.3  # the repeat keeps the last


def test_select_run_of_nothing(tmp_path):
    assert select_run([]) == [] and history_runs([]) == [] and latest_run_id([]) is None
    with pytest.raises(ValueError, match="no run 'x'; its runs: none"):
        select_run([], "x")
