"""`fairness-callback demo` end to end, shortened: the files it writes and what they hold."""

import json

import pytest

from fairness_callback.cli import main
from fairness_callback.training.history import read_history


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["lightning", "hf"])
def test_short_demo_writes_history_figure_and_tensorboard(framework, tmp_path, capsys):
    out = tmp_path / "demo"
    summary = tmp_path / "summary.json"
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--steps",
                "20",
                "--probe-every",
                "10",
                "--framework",
                framework,
                "--probe-sentences",
                "20",
                "--summary-json",
                str(summary),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    history = read_history(out / "fairness_history.jsonl")
    probes = [r for r in history if r["event"] == "probe"]
    assert [r["step"] for r in probes] == [0, 10, 20]
    assert all(r["ar/male"] > 0 and 0 <= r["jsdp/female"] <= 0.5 for r in probes)
    assert (out / "fairness_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(out.rglob("events.out.tfevents.*")), "no TensorBoard event file"
    assert f"tensorboard --logdir {out}" in printed
    assert "JSD gap" in printed and "no fairness early stop" in printed
    data = json.loads(summary.read_text())
    assert data["probes"] == 3 and data["last_step"] == 20 and data["config"]["framework"] == framework


def test_demo_passes_skew_from_step_to_the_run(monkeypatch):
    """``--skew-from-step N`` reaches ``DemoConfig``; left out, the model's preset (500 tiny, 0 SmolLM2)."""
    import fairness_callback.demo.run as demo_run

    configs = []
    monkeypatch.setattr(demo_run, "train_demo", lambda config: configs.append(config) or {})
    assert main(["demo", "--skew-from-step", "7", "--no-early-stopping"]) == 0
    assert main(["demo"]) == 0
    assert [c.skew_from_step for c in configs] == [7, 500]


def test_demo_rejects_a_bad_skew(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--skew", "2"])
    assert "--skew: expected a number from 0 to 1" in capsys.readouterr().err


def _probe_lines(path):
    return [r for r in read_history(path) if r["event"] == "probe"]


@pytest.mark.slow
def test_other_axes_are_probed_beside_gender_and_change_nothing_of_the_run(tmp_path, capsys):
    """`demo --they`: every gender metric and the held-out loss equal those of the same run without
    it, bit for bit (probes never change training); the they probe is logged, tabled and summarised."""
    common = ["--steps", "10", "--probe-every", "5", "--probe-sentences", "10"]
    assert main(["demo", "--out", str(tmp_path / "plain"), *common]) == 0
    capsys.readouterr()
    summary = tmp_path / "summary.json"
    assert (
        main(["demo", "--out", str(tmp_path / "axes"), *common, "--they", "--axis-prompts", "40", "--summary-json", str(summary)])
        == 0
    )
    printed = capsys.readouterr().out
    plain, axes = (
        _probe_lines(tmp_path / "plain" / "fairness_history.jsonl"),
        _probe_lines(tmp_path / "axes" / "fairness_history.jsonl"),
    )
    assert [r["step"] for r in axes] == [r["step"] for r in plain] == [0, 5, 10]
    for alone, beside in zip(plain, axes):
        metrics = [k for k, v in alone.items() if "/" in k and not isinstance(v, dict) and not k.startswith("stopping/")]
        assert len(metrics) > 100
        for key in metrics:
            assert beside[f"gender/{key}"] == alone[key] or (
                alone[key] != alone[key] and beside[f"gender/{key}"] != beside[f"gender/{key}"]
            ), key
        assert beside["val_loss"] == alone["val_loss"]
        assert beside["they/n/not_specified"] == 40 and beside["they/jsdp/lean"] is not None  # 4 sentences x 5 seeds x 2 prompts
    assert "they lean" in printed.splitlines()[[i for i, line in enumerate(printed.splitlines()) if "AR m" in line][0]]
    assert "probe: 100 prompts from 10 held-out sentences; other axes: they 40 prompts (builtin-they[4 of 240])" in printed
    data = json.loads(summary.read_text())
    assert set(data["axes"]) == {"gender", "they"} and data["axes"]["they"]["key"] == "they/jsdp/lean"
    # 10 steps, the drift at step 500: no drift inside the run, the whole run's mean gap only.
    assert data["drift_step"] is None and data["gap_before_drift"] is None and data["gap_after_drift"] is None
    assert data["axes"]["gender"]["gap_whole_run"] == pytest.approx(data["gap_whole_run"])
    assert "mean JSD-P gap of gender over the whole run (no drift inside it: skew_from_step 500 >= 10 steps" in printed


def test_other_axis_errors_name_the_option_or_the_probe(tmp_path, capsys, bbq_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path / "a"), "--bbq-categories", "Religion"])
    assert "--bbq-categories needs --bbq DIR" in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path / "a"), "--winogender", str(tmp_path / "missing")])
    assert "--winogender" in str(exit_info.value.code) and "is not a directory" in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path / "a"), "--bbq", str(bbq_dir), "--bbq-categories", "Religon"])
    assert "Religon" in str(exit_info.value.code)
    # BBQ's lettered answers need " A" / " B" / " C" tokens; the tiny model's corpus tokenizer has none
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path / "a"), "--steps", "2", "--bbq", str(bbq_dir), "--bbq-categories", "Religion"])
    assert "probe 'religion' (bbq-Religion)" in str(exit_info.value.code) and "--model smollm2" in str(exit_info.value.code)


def _gap_history(gaps: dict[int, float]) -> list[dict]:
    return [{"event": "probe", "run_id": "r", "step": step, "jsdp/gap": gap} for step, gap in gaps.items()]


def test_the_summary_reports_the_gap_before_and_after_the_drift():
    """Probes at steps <= skew_from_step are before the drift, those after it after (a ramp's included);
    a run with no drift inside it (skew_from_step 0, or past the last step) gets the whole run's mean."""
    from fairness_callback.demo.run import DemoConfig, format_drift_gaps, summarize

    history = _gap_history({0: 0.0, 50: 0.02, 100: -0.01, 150: 0.1, 200: 0.2})
    config = DemoConfig(steps=200, skew_from_step=100, skew_ramp_steps=50)
    summary = summarize(history, config, seconds=1.0)
    assert summary["drift_step"] == 100
    assert summary["gap_before_drift"] == pytest.approx(0.01 / 3) and summary["gap_after_drift"] == pytest.approx(0.15)
    assert summary["gap_whole_run"] == pytest.approx(0.062)
    assert "second_half_gap" not in summary
    line = format_drift_gaps(summary, config)
    assert line == "mean JSD-P gap before the drift (probes at steps <= 100): +0.0033; after it (steps > 100): +0.1500"
    for skew_from_step, why in (
        (0, "skew_from_step 0, one corpus from the first step"),
        (200, "skew_from_step 200 >= 200 steps"),
    ):
        config = DemoConfig(steps=200, skew_from_step=skew_from_step)
        summary = summarize(history, config, seconds=1.0)
        assert summary["drift_step"] is None and summary["gap_before_drift"] is summary["gap_after_drift"] is None
        assert format_drift_gaps(summary, config).startswith(f"mean JSD-P gap over the whole run (no drift inside it: {why}")
    stopped = summarize(_gap_history({0: 0.0, 50: 0.02}), DemoConfig(steps=200, skew_from_step=100), seconds=1.0)
    assert stopped["gap_after_drift"] is None  # stopped before the drift: no probe after it
    assert "after it (steps > 100): n/a (no probe)" in format_drift_gaps(stopped, DemoConfig(steps=200, skew_from_step=100))
