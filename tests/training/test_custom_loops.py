"""``FairnessTracker`` in loops of one's own: a plain loop here, and in real processes
``accelerate launch`` (2 CPU processes), Lightning Fabric (2 processes) and TRL + LoRA.
FSDP2 ``fully_shard`` with the tracker is in ``tests/dist/fsdp2_probe.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fairness_callback import FairnessTracker, StopReason
from fairness_callback.training.history import read_history
from support import ScriptedGapProbe, make_dataset, make_model, make_tokenizer, point_rule, read_wandb_run, small_probe

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def train(tracker: FairnessTracker, model, steps: range, losses: dict[int, float] | None = None) -> list:
    """A plain torch loop: one optimizer step per batch, then ``tracker.step``; stops when told."""
    tokenizer = make_tokenizer()
    data = make_dataset(tokenizer, n=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    outcomes = []
    for step in steps:
        batch = data[2 * (step % 30) : 2 * (step % 30) + 2]
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if losses and step in losses:
            tracker.update_loss({"val_loss": losses[step]})
        outcomes.append(tracker.step(model, step))
        if outcomes[-1].should_stop:
            break
    return outcomes


@pytest.mark.slow
def test_plain_loop_probes_when_due_logs_and_stops(tmp_path):
    tokenizer = make_tokenizer()
    logged: list[tuple[int, dict]] = []
    tracker = FairnessTracker(
        every_n_steps=2,
        probe=ScriptedGapProbe(tokenizer, [0.05, 0.01, 0.02, 0.03, 0.04]),
        early_stopping=point_rule(patience=2),
        history_path=tmp_path / "h.jsonl",
        log=lambda metrics, step: logged.append((step, metrics)),
    )
    model = make_model(tokenizer)
    assert tracker.start(model).probed  # step 0
    outcomes = train(tracker, model, range(1, 20), losses={2: 1.0, 4: 1.0, 6: 1.0})
    assert [o.step for o in outcomes if o.probed] == [2, 4, 6]
    assert all(o.metrics is None for o in outcomes if not o.probed)
    assert outcomes[-1].should_stop and outcomes[-1].step == 6
    assert tracker.stopped_reason is StopReason.GAP_GREW
    assert outcomes[-1].message.startswith("stopping at step 6: jsdp/gap 0.03 exceeded best 0.01")
    assert [step for step, _ in logged] == [0, 2, 4, 6]
    assert logged[1][1]["fairness/jsdp/gap"] == 0.01 and "fairness/ar/male" in logged[1][1]
    records = read_history(tmp_path / "h.jsonl")
    assert [r["event"] for r in records] == ["run_start", "probe", "probe", "probe", "probe", "stop"]
    assert {r["run_id"] for r in records} == {tracker.run_id}
    assert records[3]["val_loss"] == 1.0


@pytest.mark.slow
def test_resume_from_state_dict_continues_the_run(tmp_path):
    tokenizer = make_tokenizer()
    path = tmp_path / "h.jsonl"

    def tracked(gaps):
        return FairnessTracker(
            every_n_steps=2,
            probe=ScriptedGapProbe(tokenizer, gaps),
            early_stopping=point_rule(patience=2),
            history_path=path,
        )

    first = tracked([0.05, 0.01, 0.02])
    model = make_model(tokenizer)
    first.start(model)
    train(first, model, range(1, 5))
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint would keep it
    second = tracked([0.03])
    second.load_state_dict(state)
    assert not second.start(model, step=4).probed  # step 4 was probed before the checkpoint
    outcomes = train(second, model, range(5, 9))
    assert outcomes[-1].step == 6 and outcomes[-1].should_stop  # the wait count went on from the checkpoint
    records = read_history(path)
    assert [r["resumed"] for r in records if r["event"] == "run_start"] == [False, True]
    assert {r["run_id"] for r in records} == {first.run_id} == {second.run_id}
    fresh = tracked([0.05])
    fresh.start(model)
    assert fresh.run_id != first.run_id  # a new run in the same file gets its own id


@pytest.mark.slow
def test_tensorboard_writer_gets_scalars_and_the_layout(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    tokenizer = make_tokenizer()
    writer = SummaryWriter(tmp_path / "tb")
    tracker = FairnessTracker(every_n_steps=3, probe=small_probe(tokenizer, sentences=6), log=writer)
    model = make_model(tokenizer)
    tracker.start(model)
    train(tracker, model, range(1, 7))
    writer.close()
    (event_file,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("fairness/jsdp/gap")] == [0, 3, 6]
    assert events.Scalars("fairness/jsdp/gap")[-1].value == pytest.approx(tracker.last_metrics["jsdp/gap"], rel=1e-5)
    assert "custom_scalars__config__" in events.Tags()["tensors"]


@pytest.mark.slow
def test_wandb_run_gets_the_metrics_without_moving_its_step(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path))
    run = wandb.init(project="fairness-callback-tests", mode="offline")
    tokenizer = make_tokenizer()
    tracker = FairnessTracker(every_n_steps=2, probe=small_probe(tokenizer, sentences=6), log=run)
    model = make_model(tokenizer)
    gaps = {}
    tracker.start(model)
    gaps[0] = tracker.last_metrics["jsdp/gap"]
    for step in range(1, 6):
        outcome = tracker.step(model, step)
        if outcome.probed:
            gaps[step] = outcome.metrics["jsdp/gap"]
        run.log({"train/loss": float(step)}, step=step)  # the user's own rows, at their own steps
    run.finish()
    wandb.teardown()  # the next test's run gets settings of its own
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    rows, exit_code = read_wandb_run(run_file)
    assert exit_code == 0
    assert [row["train/loss"] for row in rows if "train/loss" in row] == [1.0, 2.0, 3.0, 4.0, 5.0]  # none dropped
    assert [row["_step"] for row in rows] == sorted(row["_step"] for row in rows)
    fair = {row["fairness/step"]: row["fairness/jsdp/gap"] for row in rows if "fairness/jsdp/gap" in row}
    assert fair == pytest.approx(gaps)


def test_log_of_an_unknown_kind_is_refused():
    with pytest.raises(TypeError, match="log must be a callable"):
        FairnessTracker(every_n_steps=2, log=42)


def test_a_failing_logger_does_not_stop_training(tmp_path, caplog):
    def broken(metrics, step):
        raise OSError("disk full")

    tokenizer = make_tokenizer()
    tracker = FairnessTracker(every_n_steps=2, probe=small_probe(tokenizer, sentences=4), log=broken)
    outcome = tracker.start(make_model(tokenizer))
    assert outcome.metrics is not None and not outcome.failed
    assert "could not be logged; training goes on" in caplog.text


# -- real processes -------------------------------------------------------------------------------
def run(command: list[str], tmp_path: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1", **env}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=tmp_path)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{command} hung for {timeout} s:\n{error.stdout}\n{error.stderr}")
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def two_ranks(summary: Path) -> list[dict]:
    return [json.loads(Path(f"{summary}.rank{r}.json").read_text()) for r in (0, 1)]


def check_one_run(history: Path, steps: list[int], ranks: list[dict]) -> None:
    records = read_history(history)
    assert [r["step"] for r in records if r["event"] == "probe"] == steps
    assert [r["event"] for r in records].count("run_start") == 1
    assert {r["run_id"] for r in records} == {ranks[0]["run_id"]} == {ranks[1]["run_id"]}
    assert ranks[0]["last_metrics"] == ranks[1]["last_metrics"]  # the same probe result on both ranks
    last = next(r for r in reversed(records) if r["event"] == "probe")
    assert last["jsdp/gap"] == pytest.approx(ranks[0]["last_metrics"]["jsdp/gap"])
    assert last["prefix_sharing"] == "tree"


@pytest.mark.slow
@pytest.mark.distributed
def test_accelerate_launch_two_cpu_processes(tmp_path):
    launcher = Path(sys.executable).parent / "accelerate"
    out = tmp_path / "run"
    run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "0",
            str(EXAMPLES / "custom_loop.py"),
            "--output-dir",
            str(out),
            "--max-steps",
            "20",
            "--probe-every",
            "10",
            "--summary-json",
            str(tmp_path / "s"),
        ],
        tmp_path,
        ACCELERATE_USE_CPU="1",
    )
    ranks = two_ranks(tmp_path / "s")
    assert ranks[0]["step"] == ranks[1]["step"] == 20
    check_one_run(out / "fairness_history.jsonl", [0, 10, 20], ranks)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
@pytest.mark.distributed
def test_fabric_two_processes(tmp_path):
    out = tmp_path / "run"
    run(
        [
            sys.executable,
            str(EXAMPLES / "fabric_train.py"),
            "--devices",
            "2",
            "--output-dir",
            str(out),
            "--max-steps",
            "20",
            "--probe-every",
            "10",
            "--summary-json",
            str(tmp_path / "s"),
        ],
        tmp_path,
    )
    ranks = two_ranks(tmp_path / "s")
    check_one_run(out / "fairness_history.jsonl", [0, 10, 20], ranks)
    (event_file,) = out.glob("tensorboard/version_0/events.out.tfevents.*")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("fairness/jsdp/gap")] == [0, 10, 20]  # rank 0 only, once each


@pytest.mark.slow
def test_trl_sft_with_lora_probes_on_the_fast_path(tmp_path):
    pytest.importorskip("trl")
    sys.path.insert(0, str(EXAMPLES))
    try:
        from trl_sft_lora import main
    finally:
        sys.path.remove(str(EXAMPLES))
    trainer = main(["--output-dir", str(tmp_path), "--max-steps", "4", "--probe-every", "2"])
    assert type(trainer.model).__name__.startswith("PeftModel")
    records = read_history(tmp_path / "fairness_history.jsonl")
    probes = [r for r in records if r["event"] == "probe"]
    assert [r["step"] for r in probes] == [0, 2, 4]
    assert {r["prefix_sharing"] for r in probes} == {"tree"}  # the adapter does not cost the token tree
    assert probes[0]["jsdp/gap"] != probes[-1]["jsdp/gap"]  # the adapter trained, and the probe saw it
