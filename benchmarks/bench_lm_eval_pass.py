"""The accuracy side in the same pass: what loading each checkpoint once saves, in one run.

A series of ``--checkpoints`` saved GPT-NeoX checkpoints (``--hidden``, ``--layers``, a BPE vocabulary of
``--vocab`` tokens, random weights of different seeds; the architecture of the demo's model) and a local
lm-eval task of ``--items`` two-choice items (a JSONL file read with ``dataset_path: json``) are
written to a temporary folder. Then, timed:

- (a) one pass: ``replay(..., evaluators=[LmEvalEvaluator(...)])``, what ``fairness-callback replay
  --lm-eval-task`` runs: each checkpoint is loaded once, probed, and evaluated by lm-eval's
  ``HFLM(pretrained=<the loaded model>)``;
- (b) two passes: the same ``replay`` without the evaluator, then a separate lm-eval run over the same
  checkpoints that loads each one again: ``simple_evaluate(model="hf", model_args={"pretrained": <dir>})``,
  in this process, with one task index for the whole run (the cheapest a separate run can be);
- (c) with ``--cli``: the replay, then the ``lm_eval`` command once per checkpoint, as
  docs/reproduce_paper.md's loop does (a new process each: imports, the task index, the load).

The probe is ``--sentences`` built-in sentences, one option-order seed. lm-eval's task index (built once
per run in (a) and (b), seconds) is timed apart as ``index_s`` and left out of the per-checkpoint
figures; an untimed warm-up evaluation comes first (imports, the data set's cache). ``--repeats``
alternates (a) and (b) and takes medians (the parts of each, ``*_parts_s_per_ckpt``: the last repeat). The accuracies of (a) and (b) (and (c)) must be equal:
``same_values``. The last line is one JSON object.

    python benchmarks/bench_lm_eval_pass.py [--quick] [--checkpoints 4] [--hidden 512] [--layers 8] [--items 400]
        [--sentences 40] [--repeats 2] [--cli]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.demo.tiny_model import probe_texts, tiny_gpt_neox, train_bpe_tokenizer
from fairness_callback.offline.lm_eval_pass import LmEvalEvaluator
from fairness_callback.offline.replay import Loader, find_checkpoints, replay
from fairness_callback.training.history import read_history

TASK = "bench_pairs"
PAIRS = [(" he", " she"), (" him", " her"), (" his", " hers"), (" man", " woman"), (" father", " mother"), (" son", " daughter")]
JOBS = ["nurse", "driver", "teacher", "guard", "baker", "clerk", "farmer", "cook", "lawyer", "cashier", "chief", "writer"]


def write_task(folder: Path, items: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "context": f"The {JOBS[i % len(JOBS)]} told the {JOBS[(i * 5 + 3) % len(JOBS)]} that",
            "choices": list(PAIRS[i % len(PAIRS)]),
            "label": (i // len(PAIRS) + i) % 2,
        }
        for i in range(items)
    ]
    (folder / "items.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    yaml = folder / f"{TASK}.yaml"
    yaml.write_text(
        f"task: {TASK}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / 'items.jsonl'}\n"
        f"  cache_dir: {folder / 'cache'}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{context}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: label\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return yaml


def write_series(folder: Path, tokenizer, n: int, hidden: int, layers: int) -> int:
    """``checkpoint-0``, ``checkpoint-100``, ...; the parameter count."""
    for i in range(n):
        model = tiny_gpt_neox(len(tokenizer), hidden_size=hidden, num_layers=layers, num_heads=max(1, hidden // 64), seed=i)
        model.save_pretrained(folder / f"checkpoint-{100 * i}")
        tokenizer.save_pretrained(folder / f"checkpoint-{100 * i}")
    return sum(p.numel() for p in model.parameters())


def probe(tokenizer, sentences: int) -> FairnessProbe:
    full = ProbeSet.builtin()
    step = max(1, len(full) // sentences)
    return FairnessProbe(tokenizer, ProbeSet([full[i * step] for i in range(sentences)], name="bench"), seeds=(0,))


def accuracies(history: Path) -> dict[int, float]:
    return {r["step"]: r[f"lm_eval/{TASK}/acc"] for r in read_history(history) if r["event"] == "probe"}


def one_pass(checkpoints, fairness_probe, evaluator, history: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = replay(checkpoints, fairness_probe, history, Loader(), progress=False, evaluators=[evaluator])
    seconds = time.perf_counter() - start
    assert not summary.failed, summary.failed
    lines = [r for r in read_history(history) if r["event"] == "probe"]
    assert not any("lm_eval/error" in r for r in lines), lines
    parts = {
        "load_s": sum(r["load_seconds"] for r in lines),
        "probe_s": sum(r["probe_seconds"] for r in lines),
        "lm_eval_s": sum(r["lm_eval/seconds"] for r in lines),
    }
    return seconds, {"values": accuracies(history), **parts}


def separate_lm_eval(source: str, task_manager, batch_size: int) -> float:
    """A separate lm-eval run's accuracy for one saved checkpoint: HFLM loads it from its folder."""
    from lm_eval import simple_evaluate

    output = simple_evaluate(
        model="hf",
        model_args={"pretrained": source, "dtype": "float32", "device": "cpu"},
        tasks=[TASK],
        task_manager=task_manager,
        batch_size=batch_size,
        log_samples=False,
    )
    return output["results"][TASK]["acc,none"]


def two_passes(checkpoints, fairness_probe, task_manager, batch_size: int, history: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = replay(checkpoints, fairness_probe, history, Loader(), progress=False)
    replayed = time.perf_counter()
    assert not summary.failed, summary.failed
    values = {checkpoint.step: separate_lm_eval(checkpoint.source, task_manager, batch_size) for checkpoint in checkpoints}
    end = time.perf_counter()
    return end - start, {"values": values, "replay_s": replayed - start, "separate_lm_eval_s": end - replayed}


def with_cli(checkpoints, fairness_probe, yaml: Path, batch_size: int, out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    replay(checkpoints, fairness_probe, out / "cli_history.jsonl", Loader(), progress=False)
    replayed = time.perf_counter()
    values = {}
    for checkpoint in checkpoints:
        target = out / "cli" / str(checkpoint.step)
        command = [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={checkpoint.source},dtype=float32",
        ]
        command += ["--tasks", TASK, "--include_path", str(yaml.parent), "--device", "cpu", "--batch_size", str(batch_size)]
        subprocess.run([*command, "--output_path", str(target)], check=True, capture_output=True, text=True)
        (result,) = target.rglob("results_*.json")
        values[checkpoint.step] = json.loads(result.read_text())["results"][TASK]["acc,none"]
    end = time.perf_counter()
    return end - start, {"values": values, "replay_s": replayed - start, "cli_lm_eval_s": end - replayed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 checkpoints of a 2-layer width-64 model, 16 items, 10 sentences, 1 repeat"
    )
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument(
        "--vocab", type=int, default=8000, help="BPE vocabulary trained on the probe's prompts (at most ~8,000 merges exist)"
    )
    parser.add_argument("--items", type=int, default=400, help="two-choice items of the lm-eval task")
    parser.add_argument("--sentences", type=int, default=40, help="built-in probe sentences (10 prompts each)")
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval's batch size")
    parser.add_argument("--repeats", type=int, default=2, help="(a) and (b) alternated this many times; medians")
    parser.add_argument("--cli", action="store_true", help="also (c): the lm_eval command once per checkpoint")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.quick:
        args.checkpoints, args.hidden, args.layers, args.vocab, args.items, args.sentences, args.repeats = (
            2,
            64,
            2,
            1000,
            16,
            10,
            1,
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = train_bpe_tokenizer(probe_texts(), vocab_size=args.vocab)
        params = write_series(root / "run", tokenizer, args.checkpoints, args.hidden, args.layers)
        yaml = write_task(root / "task", args.items)
        checkpoints = find_checkpoints([root / "run"])
        print(
            f"{len(checkpoints)} checkpoints of {params / 1e6:.1f}M parameters (hidden {args.hidden}, {args.layers} layers, "
            f"vocabulary {len(tokenizer)}), lm-eval task of {args.items} items, probe of {args.sentences} sentences; "
            f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        start = time.perf_counter()
        evaluator = LmEvalEvaluator(tokenizer, [str(yaml)], batch_size=args.batch_size)
        index_s = time.perf_counter() - start
        fairness_probe = probe(tokenizer, args.sentences)  # built once: the same probe in every run
        # Untimed warm-up of every path: imports, the data set's cache, the probe's first run.
        model = Loader()(checkpoints[0])
        evaluator(model, checkpoints[0])
        fairness_probe.run(model)
        separate_lm_eval(checkpoints[0].source, evaluator.task_manager, args.batch_size)
        del model
        a_runs: list[float] = []
        b_runs: list[float] = []
        a_info: dict = {}
        b_info: dict = {}
        for repeat in range(args.repeats):
            seconds, a_info = one_pass(checkpoints, fairness_probe, evaluator, root / f"a{repeat}.jsonl")
            a_runs.append(seconds)
            seconds, b_info = two_passes(
                checkpoints, fairness_probe, evaluator.task_manager, args.batch_size, root / f"b{repeat}.jsonl"
            )
            b_runs.append(seconds)
            print(
                f"repeat {repeat}: (a) one pass {a_runs[-1]:.2f} s, (b) replay + separate lm-eval {b_runs[-1]:.2f} s", flush=True
            )
        n = len(checkpoints)
        a_s, b_s = statistics.median(a_runs) / n, statistics.median(b_runs) / n
        figures = {
            "quick": args.quick,
            "checkpoints": n,
            "parameters": params,
            "items": args.items,
            "sentences": args.sentences,
            "threads": torch.get_num_threads(),
            "index_s": round(index_s, 3),
            "one_pass_s_per_ckpt": round(a_s, 3),
            "two_passes_s_per_ckpt": round(b_s, 3),
            "two_over_one": round(b_s / a_s, 3),
            "saved_s_per_ckpt": round(b_s - a_s, 3),
            "one_pass_parts_s_per_ckpt": {k: round(v / n, 3) for k, v in a_info.items() if k != "values"},
            "two_passes_parts_s_per_ckpt": {k: round(v / n, 3) for k, v in b_info.items() if k != "values"},
            "accuracies": {str(k): v for k, v in sorted(a_info["values"].items())},
            "same_values": a_info["values"] == b_info["values"],
        }
        if args.cli:
            seconds, c_info = with_cli(checkpoints, fairness_probe, yaml, args.batch_size, root)
            figures["cli_s_per_ckpt"] = round(seconds / n, 3)
            figures["cli_over_one"] = round(seconds / n / a_s, 3)
            figures["cli_parts_s_per_ckpt"] = {k: round(v / n, 3) for k, v in c_info.items() if k != "values"}
            figures["same_values"] = figures["same_values"] and c_info["values"] == a_info["values"]
    print(
        f"(a) replay --lm-eval-task, one pass: {a_s:.2f} s per checkpoint (last repeat: {figures['one_pass_parts_s_per_ckpt']})\n"
        f"(b) replay, then a separate lm-eval run loading each checkpoint again: {b_s:.2f} s per checkpoint "
        f"(last repeat: {figures['two_passes_parts_s_per_ckpt']})\n"
        f"(b) / (a) = {figures['two_over_one']:.2f}x; saved {figures['saved_s_per_ckpt']:.2f} s per checkpoint; "
        f"lm-eval's task index once per run: {index_s:.1f} s (in neither)"
        + (
            f"\n(c) replay, then the lm_eval command per checkpoint: {figures['cli_s_per_ckpt']:.2f} s per checkpoint, "
            f"{figures['cli_over_one']:.2f}x (a)"
            if args.cli
            else ""
        )
        + f"\nsame accuracies: {figures['same_values']} {figures['accuracies']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
