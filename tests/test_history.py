"""The history file: appended, flushed, readable after a crash."""

import json
import math

import pytest

from fairness_callback.history import HistoryWriter, read_history


def test_append_writes_one_flushed_line_each(tmp_path):
    path = tmp_path / "sub" / "h.jsonl"
    writer = HistoryWriter(path)
    writer.append({"event": "probe", "step": 0, "jsdp/gap": 0.1})
    assert path.read_text().count("\n") == 1  # on disk before the next append
    writer.append({"event": "probe", "step": 10, "jsdp/gap": math.nan})
    records = read_history(path)
    assert [r["step"] for r in records] == [0, 10]
    assert records[1]["jsdp/gap"] is None  # NaN is stored as null, valid JSON


def test_a_new_writer_appends(tmp_path):
    path = tmp_path / "h.jsonl"
    HistoryWriter(path).append({"step": 0})
    HistoryWriter(path).append({"step": 1})
    assert [r["step"] for r in read_history(path)] == [0, 1]


def test_torn_last_line_is_skipped_and_cut_before_appending(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"step": 0}) + "\n" + '{"step": 1, "jsdp/ga')
    assert [r["step"] for r in read_history(path)] == [0]
    HistoryWriter(path).append({"step": 2})
    assert [r["step"] for r in read_history(path)] == [0, 2]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"h.jsonl, line 2: not a JSON object"):
        read_history(path)
    path.write_text('{"step": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        read_history(path)
