"""The axolotl plugin against the real axolotl package (``make test-axolotl``: axolotl in a venv of
its own, since it pins transformers, peft and trl); skipped where axolotl is not installed.

axolotl's own config loading registers the plugin from the YAML and validates the ``fairness:``
block (accepting and refusing by key), the callback the plugin returns probes a tiny Llama in the
Trainer that axolotl's builder made, and a real ``axolotl train config.yaml`` with LoRA on the CPU
writes the history; without the plugin line nothing of the package is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("axolotl")
pytestmark = pytest.mark.axolotl

from fairness_callback.integrations.axolotl import PLUGIN  # noqa: E402
from fairness_callback.training.history import read_history  # noqa: E402
from support import make_tokenizer  # noqa: E402

FAIRNESS = {"every_n_steps": 2, "max_prompts": 20, "seeds": [0]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A random 2-layer Llama and the tests' BPE tokenizer, saved as a base model; a completion data set."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("axolotl")
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(root / "model")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(root / "model")
    line = json.dumps({"text": "The developer argued with the designer because she did not like the design."})
    (root / "data.jsonl").write_text((line + "\n") * 64)
    return root


def axolotl_config(root: Path, out: Path, plugins: bool = True, fairness: dict | None = None, lora: bool = False) -> dict:
    config = {
        "base_model": str(root / "model"),
        "tokenizer_type": "AutoTokenizer",
        "special_tokens": {"pad_token": "<|endoftext|>"},
        "datasets": [{"path": str(root / "data.jsonl"), "ds_type": "json", "type": "completion"}],
        "dataset_prepared_path": str(out / "prepared"),
        "val_set_size": 0.1,
        "output_dir": str(out),
        "sequence_len": 64,
        "sample_packing": False,
        "micro_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "max_steps": 4,
        "num_epochs": 1,
        "learning_rate": 0.001,
        "optimizer": "adamw_torch",
        "lr_scheduler": "constant",
        "bf16": False,
        "fp16": False,
        "tf32": False,
        "eval_steps": 2,
        "save_strategy": "no",
        "logging_steps": 1,
    }
    if lora:
        config.update(adapter="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules=["q_proj", "v_proj"])
    if plugins:
        config["plugins"] = [PLUGIN]
    if fairness is not None:
        config["fairness"] = fairness
    return config


def write_yaml(path: Path, config: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(autouse=True)
def quiet_axolotl(monkeypatch, tmp_path):
    monkeypatch.setenv("AXOLOTL_DO_NOT_TRACK", "1")  # no telemetry from the tests
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def test_axolotl_loads_the_plugin_and_validates_the_block(tiny, tmp_path):
    from axolotl.cli.config import load_cfg
    from axolotl.integrations.base import PluginManager

    cfg = load_cfg(str(write_yaml(tmp_path / "ok.yaml", axolotl_config(tiny, tmp_path / "out", fairness=FAIRNESS))))
    assert PLUGIN in PluginManager.get_instance().plugins
    assert cfg.fairness == FAIRNESS  # kept, as written, for the plugin
    bad = axolotl_config(tiny, tmp_path / "out", fairness={"every_n_stepz": 2})
    with pytest.raises(Exception, match=r"fairness\.every_n_stepz: unknown key; did you mean 'every_n_steps'\?") as error:
        load_cfg(str(write_yaml(tmp_path / "bad.yaml", bad)))
    assert "fairness" in str(error.value)
    wrong = axolotl_config(tiny, tmp_path / "out", fairness={"probe_set": "winobias_typo"})
    with pytest.raises(Exception, match=r"fairness\.probe_set: unknown probe set 'winobias_typo'"):
        load_cfg(str(write_yaml(tmp_path / "wrong.yaml", wrong)))
    lightning_only = axolotl_config(tiny, tmp_path / "out", fairness={"model_attr": "net"})
    with pytest.raises(Exception, match=r"fairness\.model_attr: a Lightning key"):
        load_cfg(str(write_yaml(tmp_path / "lightning.yaml", lightning_only)))
    # the plugin line alone: every key at its default
    assert load_cfg(str(write_yaml(tmp_path / "bare.yaml", axolotl_config(tiny, tmp_path / "out")))).get("fairness") is None


@pytest.mark.slow
def test_the_callback_probes_in_the_trainer_axolotl_built(tiny, tmp_path):
    from axolotl.cli.config import load_cfg
    from axolotl.common.datasets import load_datasets
    from axolotl.train import setup_model_and_trainer

    from fairness_callback import HFFairnessCallback

    out = tmp_path / "out"
    cfg = load_cfg(str(write_yaml(tmp_path / "c.yaml", axolotl_config(tiny, out, fairness=FAIRNESS))))
    trainer, *_ = setup_model_and_trainer(cfg, load_datasets(cfg=cfg))
    ours = [c for c in trainer.callback_handler.callbacks if isinstance(c, HFFairnessCallback)]
    assert len(ours) == 1 and ours[0].tracker.schedule.every_n_steps == 2
    trainer.train()
    probes = [r for r in read_history(out / "fairness_history.jsonl") if r["event"] == "probe"]
    assert [r["step"] for r in probes] == [0, 2, 4] and ours[0].last_metrics is not None
    assert all(r["num_prompts"] == 20 for r in read_history(out / "fairness_history.jsonl") if r["event"] == "run_start")
    # the same process, a config without the plugin line: no callback of ours
    cfg = load_cfg(str(write_yaml(tmp_path / "none.yaml", axolotl_config(tiny, tmp_path / "none", plugins=False))))
    trainer, *_ = setup_model_and_trainer(cfg, load_datasets(cfg=cfg))
    assert not [c for c in trainer.callback_handler.callbacks if isinstance(c, HFFairnessCallback)]


def axolotl_train(config: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # axolotl execs `accelerate launch` from PATH
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "AXOLOTL_DO_NOT_TRACK": "1"}
    env.update({"TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"})
    return subprocess.run(
        [str(Path(bin_dir) / "axolotl"), "train", str(config)], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_axolotl_train_with_lora_writes_the_history(tiny, tmp_path):
    out = tmp_path / "out"
    fairness = {**FAIRNESS, "early_stopping": {"rule": "best", "patience": 5}}
    done = axolotl_train(write_yaml(tmp_path / "c.yaml", axolotl_config(tiny, out, fairness=fairness, lora=True)), tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    history = read_history(out / "fairness_history.jsonl")
    probes = [r for r in history if r["event"] == "probe"]
    assert [r["step"] for r in probes] == [0, 2, 4]
    assert all(r["eval_loss"] is not None and r["stopping/decided"] for r in probes)  # the rule saw axolotl's eval_loss
    assert history[0]["framework"] == "hf"
    assert "fairness/jsdp/gap" in done.stdout + done.stderr  # the metrics went to axolotl's loggers


@pytest.mark.slow
def test_axolotl_train_refuses_a_typo_before_training(tiny, tmp_path):
    out = tmp_path / "out"
    done = axolotl_train(write_yaml(tmp_path / "c.yaml", axolotl_config(tiny, out, fairness={"every_n_stepz": 2})), tmp_path)
    assert done.returncode != 0
    assert "fairness.every_n_stepz: unknown key" in done.stdout + done.stderr
    assert not (out / "fairness_history.jsonl").exists()
