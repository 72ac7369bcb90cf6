"""`fairness-callback demo` end to end, shortened: the files it writes and what they hold."""

import json

import pytest

from fairness_callback.cli import main
from fairness_callback.history import read_history


@pytest.mark.parametrize("framework", ["lightning", "hf"])
def test_short_demo_writes_history_figure_and_tensorboard(framework, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = tmp_path / "summary.json"
    assert main(["demo", "--out", str(out), "--steps", "20", "--probe-every", "10", "--framework", framework,
                 "--probe-sentences", "20", "--summary-json", str(summary)]) == 0
    printed = capsys.readouterr().out
    history = read_history(out / "fairness_history.jsonl")
    probes = [r for r in history if r["event"] == "probe"]
    assert [r["step"] for r in probes] == [0, 10, 20]
    assert all(0 < r["ar/male"] and 0 <= r["jsdp/female"] <= 0.5 for r in probes)
    assert (out / "fairness_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(out.rglob("events.out.tfevents.*")), "no TensorBoard event file"
    assert f"tensorboard --logdir {out}" in printed
    assert "JSD gap" in printed and "no fairness early stop" in printed
    data = json.loads(summary.read_text())
    assert data["probes"] == 3 and data["last_step"] == 20 and data["config"]["framework"] == framework


def test_demo_rejects_a_bad_skew(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--skew", "2"])
    assert "--skew: expected a number from 0 to 1" in capsys.readouterr().err
