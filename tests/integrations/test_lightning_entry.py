"""The no-code Lightning path: ``FAIRNESS_CALLBACK_CONFIG=fairness.yaml python train.py``.

A stock training script (tests/integrations/scripts/stock_lightning.py, which never imports this
package) run as a subprocess, with the variable set and unset, with the standalone
``pytorch_lightning`` package, under LightningCLI, and beside a callback added by hand; and the
configuration file's errors, which stop the Trainer from being built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairness_callback.integrations.config import ConfigError, FairnessConfig, load_config_file
from fairness_callback.training.history import read_history

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "integrations" / "scripts" / "stock_lightning.py"
CONFIG = "every_n_steps: 2\nmax_prompts: 20\nseeds: [0]\n"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, bpe_tokenizer):
    directory = tmp_path_factory.mktemp("tokenizer")
    bpe_tokenizer.save_pretrained(directory)
    return directory


def train(tokenizer_dir, out: Path, config: str | None, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FAIRNESS_CALLBACK_CONFIG"}
    env.update({"TMPDIR": str(out.parent), "OMP_NUM_THREADS": "1"})
    if config is not None:
        path = out.parent / f"{out.name}.yaml"
        path.write_text(config)
        env["FAIRNESS_CALLBACK_CONFIG"] = str(path)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tokenizer_dir), str(out), *extra], env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def ours(callbacks: list[str]) -> list[str]:
    return sorted(c for c in callbacks if "Fairness" in c or "Configured" in c)


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def probe_steps(path: Path) -> list[int]:
    return [r["step"] for r in read_history(path) if r["event"] == "probe"]


@pytest.mark.slow
@pytest.mark.parametrize("package", ["lightning.pytorch", "pytorch_lightning"])
def test_the_variable_adds_the_probe_to_a_stock_script(tokenizer_dir, tmp_path, package):
    pytest.importorskip(package)
    out = tmp_path / "on"
    train(tokenizer_dir, out, CONFIG, "--package", package)
    run = report(out)
    assert run["global_step"] == 4 and run["imported"]
    assert ours(run["callbacks"]) == [
        "ConfiguredLightningCallback" if package == "lightning.pytorch" else "PTLConfiguredLightningCallback"
    ]
    history = Path(run["log_dir"]) / "fairness_history.jsonl"  # the run's own folder, as the callback's default
    assert probe_steps(history) == [0, 2, 4]
    start = read_history(history)[0]
    assert start["framework"] == "lightning" and start["num_prompts"] == 20


@pytest.mark.slow
def test_unset_leaves_no_trace(tokenizer_dir, tmp_path):
    out = tmp_path / "off"
    train(tokenizer_dir, out, None)
    run = report(out)
    assert run["global_step"] == 4 and not ours(run["callbacks"])
    assert not list(out.rglob("fairness_history*.jsonl"))


@pytest.mark.slow
def test_a_callback_added_by_hand_wins_and_the_run_is_probed_once(tokenizer_dir, tmp_path):
    out = tmp_path / "both"
    done = train(tokenizer_dir, out, CONFIG.replace("every_n_steps: 2", "every_n_steps: 1"), "--by-hand")
    run = report(out)
    assert ours(run["callbacks"]) == ["ConfiguredLightningCallback", "LightningFairnessCallback"]
    histories = list(out.rglob("fairness_history*.jsonl"))
    assert len(histories) == 1 and probe_steps(histories[0]) == [0, 2, 4]  # the hand-added one's interval (2), not the file's (1)
    assert "the configured one stands down" in done.stderr


@pytest.mark.slow
def test_lightning_cli_gets_it_and_a_yaml_callback_wins(tokenizer_dir, tmp_path):
    out = tmp_path / "cli"
    train(tokenizer_dir, out, CONFIG, "--cli", "--", "--model.lr=0.001")
    run = report(out)
    assert "ConfiguredLightningCallback" in run["callbacks"]
    assert probe_steps(Path(run["log_dir"]) / "fairness_history.jsonl") == [0, 2, 4]
    # the callback configured in LightningCLI's own YAML as well: that one probes
    cli_yaml = tmp_path / "cli.yaml"
    cli_yaml.write_text(
        "trainer:\n  callbacks:\n    - class_path: fairness_callback.integrations.lightning.LightningFairnessCallback\n"
        "      init_args: {every_n_steps: 4}\n"
    )
    out = tmp_path / "cli_both"
    train(tokenizer_dir, out, CONFIG, "--cli", "--", f"--config={cli_yaml}")
    histories = list(out.rglob("fairness_history*.jsonl"))
    assert len(histories) == 1 and probe_steps(histories[0]) == [0, 4]


@pytest.mark.slow
def test_a_typo_stops_the_trainer_before_training_naming_file_line_and_key(tokenizer_dir, tmp_path):
    out = tmp_path / "typo"
    done = train(tokenizer_dir, out, "max_prompts: 20\nevery_n_step: 2\n", check=False)
    assert done.returncode != 0 and not (out / "report.json").exists()
    assert "typo.yaml, line 2: every_n_step: unknown key; did you mean 'every_n_steps'?" in done.stderr


# -- the configuration block, in process ---------------------------------------------------------
def test_config_file_errors_name_file_line_and_key(tmp_path):
    path = tmp_path / "f.yaml"
    cases = {
        "every_n_steps: 0\n": "f.yaml, line 1: every_n_steps: expected a positive integer, got 0",
        "seeds: [0]\nprobe_set: winobias_typo\n": "f.yaml, line 2: probe_set: unknown probe set 'winobias_typo'; registered: builtin",
        "early_stopping: 'rule=cusum,thresh=5'\n": "f.yaml, line 1: early_stopping: --stop-rule 'rule=cusum,thresh=5': 'thresh=5' is not NAME=VALUE",
        "early_stopping: {rule: best, patience: many}\n": "patience='many' is not int",
        "on_error: ignore\n": "on_error: expected warn or raise, got 'ignore'",
        "probe_set: builtin\nprobes: {they: builtin-they}\n": "give probe_set or probes, not both",
        "- every_n_steps\n": "expected a mapping of the keys every_n_steps",
        "every_n_steps: [\n": "not valid YAML",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(ConfigError) as error:
            load_config_file(path)
        assert message in str(error.value), (text, str(error.value))
    with pytest.raises(ConfigError, match="nope.yaml: cannot be read"):
        load_config_file(tmp_path / "nope.yaml")


def test_config_builds_the_callbacks_arguments_and_probes(bpe_tokenizer, tmp_path):
    config = FairnessConfig.from_mapping(
        {
            "every_n_steps": 50,
            "probes": {"gender": "builtin", "they": {"name": "builtin-they"}},
            "max_prompts": 20,
            "seeds": [0, 1],
            "early_stopping": {"rule": "best", "patience": 2},
            "history_path": str(tmp_path / "h.jsonl"),
        },
        source="fairness",
    )
    kwargs = config.callback_kwargs()
    assert kwargs["every_n_steps"] == 50 and kwargs["early_stopping"].patience == 2 and kwargs["history_path"].endswith("h.jsonl")
    probes = config.build_probes(bpe_tokenizer)["probes"]
    assert sorted(probes) == ["gender", "they"] and all(len(p) <= 20 for p in probes.values())
    assert probes["gender"].seeds == (0, 1)
    assert FairnessConfig.from_mapping({"early_stopping": True}).callback_kwargs()["early_stopping"] is not None
    assert FairnessConfig.from_mapping({}).callback_kwargs()["early_stopping"] is None
    with pytest.raises(ConfigError, match=r"fairness\.probe_set: probe set 'winogender' needs directory="):
        FairnessConfig.from_mapping({"probe_set": "winogender"}, source="fairness").build_probes(bpe_tokenizer)
    with pytest.raises(ConfigError, match="no tokenizer to build the probe with"):
        FairnessConfig.from_mapping({}, source="fairness").build_probes(None)
