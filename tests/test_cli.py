"""The command line: ``fairness-callback probe`` on a saved model, and its error messages."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fairness_callback.cli import main


@pytest.mark.slow
def test_probe_prints_table_and_writes_json(saved_model, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["probe", "--model", str(saved_model), "--seeds", "0,1", "--batch-size", "32", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2,240 prompts from 560 sentences (builtin)" in printed and "prefix sharing: tree" in printed
    assert "gap (f - m)" in printed and "Mann-Whitney" in printed
    data = json.loads(out.read_text())
    assert data["info"]["seeds"] == [0, 1] and len(data["records"]) == 2240
    assert data["metrics"]["ar/gap"] == pytest.approx(data["metrics"]["ar/female"] - data["metrics"]["ar/male"])
    plain = tmp_path / "plain.json"
    main(["probe", "--model", str(saved_model), "--seeds", "0,1", "--prefix-sharing", "off", "--json", str(plain)])
    assert "prefix sharing: off" in capsys.readouterr().out
    assert json.loads(plain.read_text())["metrics"]["jsdp/gap"] == pytest.approx(data["metrics"]["jsdp/gap"], abs=1e-6)


def test_cli_prefix_sharing_choices_are_the_probes():
    from fairness_callback.cli import build_parser
    from fairness_callback.probe import PREFIX_SHARING

    probe_parser = build_parser()._subparsers._group_actions[0].choices["probe"]
    action = next(a for a in probe_parser._actions if a.dest == "prefix_sharing")
    assert tuple(action.choices) == PREFIX_SHARING


def test_probe_on_official_winobias(saved_model, winobias_dir, capsys):
    main(["probe", "--model", str(saved_model), "--seeds", "0", "--winobias", str(winobias_dir), "--dtype", "float32"])
    assert "3,168 prompts from 1,584 sentences" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/model"], "--model '/nonexistent/model': model directory '/nonexistent/model' does not exist"),
        (["--seeds", "0,x"], "--seeds takes comma-separated integers"),
        (["--batch-size", "0"], "expected a positive integer"),
        (["--winobias", "/nonexistent/wb"], "--winobias '/nonexistent/wb' is not a directory"),
        (["--dtype", "float8"], "unknown dtype 'float8'"),
        (["--prefix-sharing", "yes"], "--prefix-sharing: invalid choice: 'yes'"),
    ],
)
def test_probe_errors_name_the_option(saved_model, args, message, capsys):
    argv = ["probe", "--model", str(saved_model), *args] if args[0] != "--model" else ["probe", *args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    text = str(exit_info.value.code) + capsys.readouterr().err
    assert message in text


def test_model_dir_without_config(tmp_path):
    with pytest.raises(SystemExit, match="has no config.json"):
        main(["probe", "--model", str(tmp_path)])


@pytest.mark.slow
def test_console_script_is_installed(saved_model):
    script = Path(sys.executable).parent / "fairness-callback"
    result = subprocess.run([str(script), "probe", "--help"], capture_output=True, text=True, check=True)
    assert "--winobias" in result.stdout and "--batch-size" in result.stdout


@pytest.mark.slow
def test_replay_run_id_continues_a_run_and_report_lists_it(saved_model, tmp_path, capsys):
    import shutil

    from fairness_callback.training.history import history_runs, read_history

    shutil.copytree(saved_model, tmp_path / "a" / "checkpoint-2")
    shutil.copytree(saved_model, tmp_path / "b" / "checkpoint-4")
    history = str(tmp_path / "h.jsonl")
    common = ["--history", history, "--seeds", "0", "--batch-size", "256"]
    assert main(["replay", str(tmp_path / "a"), *common]) == 0
    (run,) = history_runs(read_history(history))
    assert f"1 checkpoint(s) probed, 0 already in {history}, 0 failed; run {run.run_id} (new)" in capsys.readouterr().out
    assert main(["replay", str(tmp_path / "b"), *common, "--run-id", run.run_id]) == 0  # another folder, same run
    assert f"run {run.run_id} (continued)" in capsys.readouterr().out
    (run,) = history_runs(read_history(history))
    assert (run.steps, run.num_probes, run.resumed) == ("2-4", 2, 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(tmp_path / "b"), *common, "--run-id", "nope"])
    assert str(exit_info.value.code) == (
        f"fairness-callback: error: {history}: no run 'nope'; its runs: {run.run_id} (steps 2-4, 2 probe(s), resumed 1x)"
    )
    assert main(["report", history, "--list-runs"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[:4] == [run.run_id, "2-4", "2", "1"]
    with pytest.raises(SystemExit, match="history /nonexistent.jsonl: no such file"):
        main(["report", "/nonexistent.jsonl", "--list-runs"])
