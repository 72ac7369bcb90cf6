"""The accuracy side in the replay's pass: lm-evaluation-harness on the checkpoint already in memory.

A local task (8 two-choice items in a JSONL file, read by lm-eval's ``dataset_path: json``) on tiny
GPT-NeoX checkpoints; nothing is fetched from the hub (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE). The
key and cost helpers need no lm-eval; the tests that run it skip without it (``pip install
"fairness-callback[eval]"``) and are slow (lm-eval's task index takes seconds to build).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fairness_callback.cli import main
from fairness_callback.offline.lm_eval_pass import (
    accuracy_column,
    is_lm_eval_column,
    kept_state,
    lm_eval_higher_is_better,
    lm_eval_values,
    resolve_tasks,
    run_evaluators,
    task_of_yaml,
)
from fairness_callback.offline.replay import Checkpoint, Loader, find_checkpoints, replay
from fairness_callback.training.history import read_history
from support import make_model, make_tokenizer, small_probe, weights_digest

TASK = "fc_tiny_pronoun"
STEPS = (0, 2, 4)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No hub: the variables, and the flags datasets and huggingface_hub read from them at import."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    try:
        import datasets.config

        monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:
        pass
    try:
        import huggingface_hub.constants

        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:
        pass


def write_task(directory, items: int = 8) -> str:
    """A two-choice task (``TASK``) of ``items`` sentences in ``directory``: the YAML's path."""
    directory.mkdir(parents=True, exist_ok=True)
    jobs = ["nurse", "driver", "teacher", "guard", "baker", "clerk", "farmer", "cook"]
    pairs = [(" he", " she"), (" him", " her"), (" his", " hers"), (" man", " woman"), (" boy", " girl")]
    pairs += [(" father", " mother"), (" son", " daughter"), (" king", " queen")]
    rows = [
        {"context": f"The {jobs[i % 8]} asked the", "choices": list(pairs[i % 8]), "label": (i // 8 + i) % 2}
        for i in range(items)
    ]
    (directory / "items.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    yaml = directory / f"{TASK}.yaml"
    yaml.write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        f"  data_files:\n    test: {directory / 'items.jsonl'}\n"
        f"  cache_dir: {directory / 'datasets_cache'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{context}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: label\n"
        "metric_list:\n"
        "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return str(yaml)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """checkpoint-0, -2, -4: tiny GPT-NeoX models of different seeds, each with the tokenizer; and the task."""
    root = tmp_path_factory.mktemp("lm_eval_series")
    tokenizer = make_tokenizer()
    for i, step in enumerate(STEPS):
        model = make_model(tokenizer, seed=10 + i).eval()
        model.save_pretrained(root / "run" / f"checkpoint-{step}")
        tokenizer.save_pretrained(root / "run" / f"checkpoint-{step}")
    return root / "run", tokenizer, write_task(root / "task")


_TASK_MANAGERS: dict = {}


def separate_lm_eval(checkpoint_dir: str, yaml: str) -> dict:
    """What a separate lm-eval run gives for one saved checkpoint: HFLM loads it from its folder."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    folder = str(Path(yaml).parent)
    if folder not in _TASK_MANAGERS:  # lm-eval's index of its own tasks takes seconds: once per folder
        _TASK_MANAGERS[folder] = TaskManager(include_path=folder)
    lm = HFLM(pretrained=checkpoint_dir, device="cpu", batch_size=4, dtype="float32")
    output = simple_evaluate(model=lm, tasks=[TASK], task_manager=_TASK_MANAGERS[folder])
    return output["results"][TASK]


# -- no lm-eval needed ---------------------------------------------------------------------------
def test_lm_eval_values_keeps_numbers_under_task_and_metric():
    results: dict = {
        "lambada_openai": {"alias": "lambada_openai", "acc,none": 0.5, "acc_stderr,none": 0.01, "perplexity,none": 9.5},
        "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": "N/A", "sample_len": 8},
        "broken": {"acc,none": float("nan"), "flag,none": True},
    }
    assert lm_eval_values(results) == {
        "lm_eval/lambada_openai/acc": 0.5,
        "lm_eval/lambada_openai/acc_stderr": 0.01,
        "lm_eval/lambada_openai/perplexity": 9.5,
        "lm_eval/gsm8k/exact_match,strict-match": 0.25,
        "lm_eval/broken/acc": None,
    }


def test_accuracy_column_and_direction():
    columns = ["jsdp/gap", "lm_eval/a/perplexity", "lm_eval/a/acc_norm", "lm_eval/a/acc", "lm_eval/b/acc", "lm_eval/a/acc_stderr"]
    assert accuracy_column(columns) == "lm_eval/a/acc"  # the first task; its acc before its acc_norm
    assert accuracy_column(["lm_eval/g/exact_match,flex", "lm_eval/g/exact_match", "lm_eval/h/acc"]) == "lm_eval/g/exact_match"
    assert accuracy_column(["jsdp/gap", "eval_loss", "lm_eval/a/perplexity", "lm_eval/seconds"]) is None
    assert lm_eval_higher_is_better("lm_eval/a/acc") is True
    assert lm_eval_higher_is_better("lm_eval/a/word_perplexity") is False
    assert lm_eval_higher_is_better("eval_loss") is None and lm_eval_higher_is_better("lm_eval/seconds") is None
    assert is_lm_eval_column("lm_eval/a/acc") and not is_lm_eval_column("lm_eval/error")


def test_resolve_tasks_takes_names_yaml_paths_and_commas(tmp_path):
    yaml = write_task(tmp_path / "tasks")
    (tmp_path / "more").mkdir()
    names, folders = resolve_tasks([f"lambada_openai,{yaml}", "hellaswag"], [tmp_path / "more"])
    assert names == ["lambada_openai", TASK, "hellaswag"]
    assert folders == [str((tmp_path / "more").resolve()), str((tmp_path / "tasks").resolve())]
    with pytest.raises(ValueError, match="'missing.yaml': no such task YAML file"):
        resolve_tasks(["missing.yaml"])
    with pytest.raises(ValueError, match="--lm-eval-include .* is not a directory"):
        resolve_tasks(["x"], [tmp_path / "nope"])
    with pytest.raises(ValueError, match="names no task"):
        resolve_tasks([" , "])


def test_task_of_yaml_reads_lm_eval_tags(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("task: my_task\nprocess_docs: !function utils.process\n")
    assert task_of_yaml(path) == "my_task"
    path.write_text("group: my_group\ntask:\n  - a\n  - b\n")
    assert task_of_yaml(path) == "my_group"
    path.write_text("dataset_path: json\n")
    with pytest.raises(ValueError, match="names its task with 'task: NAME'"):
        task_of_yaml(path)


class Scripted:
    def __init__(self, name, values=None, error=None):
        self.name, self.values, self.error = name, values or {}, error

    def __call__(self, model, checkpoint):
        if self.error is not None:
            raise self.error
        return self.values


def test_run_evaluators_names_a_failure_and_keeps_the_others(caplog):
    checkpoint = Checkpoint("run/checkpoint-2", 2, "hf")
    evaluators = [Scripted("bad", error=RuntimeError("out of memory")), Scripted("good", {"good/x/acc": 0.5})]
    with caplog.at_level("ERROR", logger="fairness_callback"):
        values = run_evaluators(evaluators, torch.nn.Linear(1, 1), checkpoint)
    assert values["bad/error"] == "RuntimeError: out of memory" and values["good/x/acc"] == 0.5
    assert values["bad/seconds"] >= 0 and values["good/seconds"] >= 0
    assert "bad failed on checkpoint run/checkpoint-2 (step 2)" in caplog.text
    assert run_evaluators((), torch.nn.Linear(1, 1), checkpoint) == {}


def test_kept_state_restores_modes_and_random_states():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    model.train()
    model[0].eval()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with kept_state(model):
        model.eval()
        random.seed(1234), np.random.seed(1234), torch.manual_seed(1234)  # what lm-eval does
        random.random(), np.random.rand(), torch.rand(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert [m.training for m in model.modules()] == [True, False, True]


def test_report_picks_the_lm_eval_accuracy_as_cost(tmp_path):
    from fairness_callback.offline.report import resolve_cost

    probes = [
        {"step": s, "jsdp/gap": 0.1, "eval_loss": 2.0, "lm_eval/t/acc_norm": a / 2, "lm_eval/t/acc": a}
        for s, a in [(0, 0.2), (4, 0.6)]
    ]
    cost = resolve_cost(probes, tmp_path / "h.jsonl")
    assert cost is not None and cost.values == {0: 0.2, 4: 0.6} and cost.higher_is_better
    assert "`lm_eval/t/acc`" in cost.description and "--cost-column" in cost.description
    column = resolve_cost(probes, tmp_path / "h.jsonl", cost_column="lm_eval/t/acc_norm")
    assert column is not None and column.values == {0: 0.1, 4: 0.3} and column.higher_is_better
    lower = resolve_cost(probes, tmp_path / "h.jsonl", cost_column="lm_eval/t/acc", higher_is_better=False)
    assert lower is not None and not lower.higher_is_better
    loss = resolve_cost(probes, tmp_path / "h.jsonl", cost_column="eval_loss")
    assert loss is not None and not loss.higher_is_better
    without = [{k: v for k, v in p.items() if not k.startswith("lm_eval/")} for p in probes]
    fallback = resolve_cost(without, tmp_path / "h.jsonl")
    assert fallback is not None and fallback.description == "history column `eval_loss`"


def test_lm_eval_options_need_a_task(tmp_path):
    with pytest.raises(SystemExit, match="--lm-eval-limit needs --lm-eval-task"):
        main(["replay", str(tmp_path), "--history", str(tmp_path / "h.jsonl"), "--lm-eval-limit", "3"])


# -- lm-eval itself ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluator(series):
    pytest.importorskip("lm_eval")
    from fairness_callback.offline.lm_eval_pass import LmEvalEvaluator

    _, tokenizer, yaml = series
    return LmEvalEvaluator(tokenizer, [yaml], batch_size=4)


@pytest.mark.slow
def test_in_memory_equals_a_separate_lm_eval_run_and_leaves_the_model_as_it_was(series, evaluator):
    folder, tokenizer, yaml = series
    checkpoint = find_checkpoints([folder / "checkpoint-2"])[0]
    model = Loader()(checkpoint)
    model.train()  # a state HFLM would change (it calls .eval())
    digest, pad = weights_digest(model), tokenizer.pad_token
    torch.manual_seed(7)
    expected_draw = torch.rand(1).item()
    torch.manual_seed(7)
    values = evaluator(model, checkpoint)
    assert torch.rand(1).item() == expected_draw  # lm-eval's seeding undone
    assert all(m.training for m in model.modules()) and weights_digest(model) == digest
    assert (
        next(model.parameters()).device.type == "cpu" and tokenizer.pad_token == pad
    )  # HFLM set a pad token on its own copy only
    separate = separate_lm_eval(str(folder / "checkpoint-2"), yaml)
    assert values[f"lm_eval/{TASK}/acc"] == pytest.approx(separate["acc,none"], abs=1e-12)
    assert values[f"lm_eval/{TASK}/acc_norm"] == pytest.approx(separate["acc_norm,none"], abs=1e-12)
    assert values[f"lm_eval/{TASK}/acc_stderr"] == pytest.approx(separate["acc_stderr,none"], abs=1e-12)


@pytest.mark.slow
def test_replay_cli_writes_the_accuracy_into_each_line_and_report_uses_it(series, tmp_path, capsys):
    pytest.importorskip("lm_eval")
    pytest.importorskip("matplotlib")
    folder, _, yaml = series
    history = tmp_path / "history.jsonl"
    argv = ["replay", str(folder), "--history", str(history), "--seeds", "0", "--batch-size", "256"]
    assert main([*argv, "--lm-eval-task", yaml, "--lm-eval-batch-size", "4"]) == 0
    assert "3 checkpoint(s) probed" in capsys.readouterr().out
    lines = [r for r in read_history(history) if r["event"] == "probe"]
    assert [r["step"] for r in lines] == list(STEPS)
    for line in lines:
        assert 0 <= line[f"lm_eval/{TASK}/acc"] <= 1 and line[f"lm_eval/{TASK}/acc_stderr"] >= 0
        assert line["lm_eval/seconds"] > 0 and "lm_eval/error" not in line and "jsdp/gap" in line
        assert line[f"lm_eval/{TASK}/acc"] == pytest.approx(separate_lm_eval(line["checkpoint"], yaml)["acc,none"], abs=1e-12), (
            line["checkpoint"]
        )
    assert len({line[f"lm_eval/{TASK}/acc"] for line in lines}) > 1  # the checkpoints differ: a real cost column

    out = tmp_path / "report"
    assert main(["report", str(history), "--out", str(out), "--max-cost", "0.5"]) == 0
    text = (out / "report.md").read_text()
    assert f"cost from history column `lm_eval/{TASK}/acc` (lm-evaluation-harness's accuracy" in text
    assert "value(final) - value(t)" in text and "higher is better" in text
    final = lines[-1][f"lm_eval/{TASK}/acc"]
    first = lines[0][f"lm_eval/{TASK}/acc"]
    assert f"{final - first:+.4g}" in text  # the first step's cost, in the trade-off table


@pytest.mark.slow
def test_an_evaluator_failing_on_one_checkpoint_does_not_stop_the_replay(series, evaluator, tmp_path, monkeypatch, capsys):
    folder, tokenizer, _ = series

    class FailsAtStep2:
        name = evaluator.name

        def __call__(self, model, checkpoint):
            if checkpoint.step == 2:
                raise RuntimeError("the task's data went missing")
            return evaluator(model, checkpoint)

    history = tmp_path / "history.jsonl"
    summary = replay(
        find_checkpoints([folder]), small_probe(tokenizer), history, Loader(), progress=False, evaluators=[FailsAtStep2()]
    )
    assert summary.probed == list(STEPS) and not summary.failed
    lines = {r["step"]: r for r in read_history(history) if r["event"] == "probe"}
    assert lines[2]["lm_eval/error"] == "RuntimeError: the task's data went missing"
    assert f"lm_eval/{TASK}/acc" not in lines[2] and "jsdp/gap" in lines[2]
    for step in (0, 4):
        assert f"lm_eval/{TASK}/acc" in lines[step] and "lm_eval/error" not in lines[step]

    # The command line says so and exits with 1, with every probe line written.
    import fairness_callback.cli

    monkeypatch.setattr(fairness_callback.cli, "lm_eval_evaluators", lambda args, tokenizer: [FailsAtStep2()])
    cli_history = tmp_path / "cli.jsonl"
    argv = ["replay", str(folder), "--history", str(cli_history), "--seeds", "0", "--batch-size", "256", "--lm-eval-task", "x"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "3 checkpoint(s) probed, 0 already in" in out
    assert "lm-eval failed (the probe line is written without its values): step 2 (" in out
    assert "checkpoint-2): RuntimeError: the task's data went missing" in out
    assert len([r for r in read_history(cli_history) if r["event"] == "probe"]) == 3


@pytest.mark.slow
def test_an_unknown_task_is_refused_before_any_checkpoint_is_read(series, tmp_path):
    pytest.importorskip("lm_eval")
    folder, _, yaml = series
    history = tmp_path / "history.jsonl"
    with pytest.raises(SystemExit, match=f"no lm-eval task 'fc_tiny_pronun' \\(did you mean '{TASK}'\\?\\)"):
        main(
            [
                "replay",
                str(folder),
                "--history",
                str(history),
                "--lm-eval-task",
                "fc_tiny_pronun",
                "--lm-eval-include",
                str(folder.parent / "task"),
            ]
        )
    assert not history.exists()
