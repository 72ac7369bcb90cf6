"""The Lightning LightningFairnessCallback on a tiny GPT-NeoX, on CPU.

Probe schedule, loggers and the stock callbacks, fairness early stopping, bit-identical training,
failed probes, resume, mixed precision, LightningCLI, and (in subprocesses, scripts in
``tests/dist/``) DDP and FSDP2.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from fairness_callback import FairnessProbe, StopReason
from fairness_callback.integrations.lightning import LightningFairnessCallback
from fairness_callback.training.alerts import Alerts
from fairness_callback.training.history import read_history
from support import (
    FailingProbe,
    ScriptedGapProbe,
    make_dataset,
    make_model,
    make_tokenizer,
    offline_wandb,
    point_rule,
    read_wandb_alerts,
    read_wandb_run,
    run_script,
    small_probe,
    weights_digest,
)

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "tests" / "dist"

#: Trainer options that validate (one batch) every 2 training batches, so ``val_loss`` is known.
VALIDATE = {"limit_val_batches": 1, "val_check_interval": 2}

#: Gaps for the stopping tests: the best |gap| (0.1) is at step 2; it is worse at steps 4 and 6,
#: so ``point_rule(patience=2)`` stops at step 6.
GROWING_GAPS = [0.3, 0.1, 0.2, 0.25, 0.0]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run this module's fits on one intra-op thread, then restore the count.

    The models are tiny, so a second thread gains little; on a busy 2-core machine, OpenMP threads
    waiting for each other made some fits ten times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def shared_tokenizer():
    """The tests' BPE tokenizer, trained once per process (every TinyLM uses it)."""
    return make_tokenizer()


@functools.cache
def shared_dataset(n: int):
    """``make_dataset`` over the first ``n`` texts, built once per process."""
    return make_dataset(shared_tokenizer(), n=n)


class TinyLM(pl.LightningModule):
    """``make_model``'s tiny GPT-NeoX at ``self.model``: LM loss to train, ``val_loss`` to validate.

    Args:
        lr: AdamW learning rate.
        dropout: hidden and attention dropout; above 0 training draws random numbers, so a probe
            that disturbed the RNG or left the model in eval mode would change the weights.
        shuffle: shuffle the training data (another RNG draw, at every epoch start).
    """

    def __init__(self, lr: float = 1e-3, dropout: float = 0.0, shuffle: bool = False) -> None:
        super().__init__()
        self.lr = lr
        self.shuffle = shuffle
        self.tokenizer = shared_tokenizer()
        self.model = make_model(self.tokenizer, seed=0, hidden_dropout=dropout, attention_dropout=dropout)

    def training_step(self, batch, batch_idx):
        return self.model(**batch).loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(shared_dataset(64), batch_size=4, shuffle=self.shuffle)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(shared_dataset(8), batch_size=4)


class SmallTestProbe(FairnessProbe):
    """``small_probe`` as a class LightningCLI can build from YAML (the default probe takes ~40 s here)."""

    def __init__(self, sentences: int = 20) -> None:
        base = small_probe(shared_tokenizer(), sentences=sentences)
        super().__init__(shared_tokenizer(), base.probe_set, seeds=base.config.seeds)


def fairness(tmp_path: Path, **kwargs) -> LightningFairnessCallback:
    """A LightningFairnessCallback probing every 2 steps with ``small_probe`` into ``tmp_path/history.jsonl``."""
    kwargs.setdefault("probe", small_probe(shared_tokenizer()))
    return LightningFairnessCallback(every_n_steps=2, history_path=tmp_path / "history.jsonl", **kwargs)


def make_trainer(tmp_path: Path, callbacks: list, **kwargs) -> pl.Trainer:
    """A quiet 6-step CPU Trainer in ``tmp_path`` without validation; ``kwargs`` override the defaults."""
    options = dict(
        accelerator="cpu",
        devices=1,
        max_steps=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


def history(tmp_path: Path, event: str = "probe") -> list[dict]:
    """The ``event`` lines of ``tmp_path/history.jsonl``."""
    return [record for record in read_history(tmp_path / "history.jsonl") if record["event"] == event]


def probe_steps(tmp_path: Path) -> list[int]:
    """The steps of the probe lines of ``tmp_path/history.jsonl``, in order."""
    return [record["step"] for record in history(tmp_path)]


def probe_reference(weights_path: Path) -> dict[str, float]:
    """``small_probe`` metrics of ``make_model`` with the saved weights, in this one process."""
    model = make_model(shared_tokenizer())
    model.load_state_dict(torch.load(weights_path, weights_only=True))
    return small_probe(shared_tokenizer()).run(model).metrics


# -- schedule --------------------------------------------------------------------------------------
@pytest.mark.parametrize("probe_at_start, steps", [(True, [0, 2, 4, 6]), (False, [2, 4, 6])])
def test_probes_once_per_due_optimizer_step_under_gradient_accumulation(tmp_path, probe_at_start, steps):
    # 12 micro-batches, 6 optimizer steps: global_step stays put on every other batch end.
    callback = fairness(tmp_path, probe_at_start=probe_at_start)
    trainer = make_trainer(tmp_path, [callback], accumulate_grad_batches=2)
    trainer.fit(TinyLM())
    assert trainer.global_step == 6
    assert probe_steps(tmp_path) == steps


# -- logging ---------------------------------------------------------------------------------------
def test_metrics_reach_tensorboard_csv_and_the_stock_callbacks(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    tensorboard, csv_logger = TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv")
    checkpoint = ModelCheckpoint(tmp_path / "ckpt", monitor="fairness/jsdp/abs_gap", mode="min", every_n_train_steps=2)
    stopping = EarlyStopping(monitor="fairness/jsdp/abs_gap", patience=100)
    trainer = make_trainer(
        tmp_path,
        [fairness(tmp_path), checkpoint, stopping],
        logger=[tensorboard, csv_logger],
        enable_checkpointing=True,
        **VALIDATE,
    )
    trainer.fit(TinyLM())

    probes = {record["step"]: record for record in history(tmp_path)}
    assert sorted(probes) == [0, 2, 4, 6]
    gaps = {step: record["jsdp/gap"] for step, record in probes.items()}

    with open(Path(csv_logger.log_dir) / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("fairness/jsdp/gap")]
    assert {int(row["step"]): float(row["fairness/jsdp/gap"]) for row in rows} == gaps
    assert all(row["fairness/ar/female"] and row["fairness/mwu_p/jsdp"] for row in rows)

    events = EventAccumulator(tensorboard.log_dir)
    events.Reload()
    assert {event.step: event.value for event in events.Scalars("fairness/jsdp/gap")} == pytest.approx(gaps, rel=1e-6)
    assert [event.step for event in events.Scalars("fairness/ar/male")] == [0, 2, 4, 6]
    config = events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    layout = layout_pb2.Layout.FromString(config)
    assert [category.title for category in layout.category] == ["fairness"]

    assert "fairness/jsdp/gap" in trainer.callback_metrics
    # Both stock callbacks look at steps 2, 4 and 6 (ModelCheckpoint never saves at step 0; validation runs after
    # the probe at the same step).
    best = min(probes[step]["jsdp/abs_gap"] for step in (2, 4, 6))
    assert checkpoint.best_model_score.item() == pytest.approx(best, rel=1e-6)
    assert stopping.best_score.item() == pytest.approx(best, rel=1e-6)
    assert not stopping.stopped_epoch and trainer.global_step == 6


@pytest.mark.slow
def test_wandb_offline_run_gets_the_metrics_at_their_steps(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing written outside tmp_path
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    logger = WandbLogger(offline=True, save_dir=tmp_path, project="fairness-callback-tests")
    trainer = make_trainer(tmp_path, [fairness(tmp_path)], logger=logger, **VALIDATE)
    trainer.fit(TinyLM())
    logger.experiment.finish()

    gaps = {record["step"]: record["jsdp/gap"] for record in history(tmp_path)}
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    rows, exit_code = read_wandb_run(run_file)
    assert exit_code == 0
    fair = [row for row in rows if "fairness/jsdp/gap" in row]
    assert {row["trainer/global_step"]: row["fairness/jsdp/gap"] for row in fair} == gaps
    assert [row["_step"] for row in rows] == sorted(row["_step"] for row in rows)
    assert [row["trainer/global_step"] for row in fair] == [0, 2, 4, 6]
    # Lightning logs val_loss at step - 1 (its step counter moves after validation), so the
    # stream as a whole is not ordered by trainer/global_step; only the fairness rows are.
    assert any("val_loss" in row for row in rows)


@pytest.mark.slow
def test_the_stop_alert_reaches_the_wandb_loggers_run(tmp_path, monkeypatch):
    """The trainer's ``WandbLogger`` run gets the stop alert (offline W&B records it in the run file)."""
    from lightning.pytorch.loggers import WandbLogger

    offline_wandb(monkeypatch, tmp_path)
    logger = WandbLogger(offline=True, save_dir=tmp_path, project="fairness-callback-tests")
    callback = fairness(
        tmp_path, probe=ScriptedGapProbe(shared_tokenizer(), GROWING_GAPS), early_stopping=point_rule(patience=2), alerts=Alerts()
    )
    trainer = make_trainer(tmp_path, [callback], max_steps=20, logger=logger, **VALIDATE)
    trainer.fit(TinyLM())
    assert callback.tracker.alerts is not None and callback.tracker.alerts._wandb_run() is logger.experiment
    logger.experiment.finish()
    assert trainer.global_step == 6 and callback.stop_message
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    alerts = read_wandb_alerts(run_file)
    assert [(alert["title"], alert["level"]) for alert in alerts] == [("Fairness stop at step 6", "WARN")]
    assert alerts[0]["text"].startswith(callback.stop_message) and "reason: gap_grew" in alerts[0]["text"]


# -- fairness early stopping ----------------------------------------------------------------------
def test_fairness_early_stopping_stops_at_the_computed_step(tmp_path):
    callback = fairness(tmp_path, probe=ScriptedGapProbe(shared_tokenizer(), GROWING_GAPS), early_stopping=point_rule(patience=2))
    trainer = make_trainer(tmp_path, [callback], max_steps=20, **VALIDATE)
    trainer.fit(TinyLM())

    assert trainer.global_step == 6
    assert callback.stopped_reason is StopReason.GAP_GREW
    (stop,) = history(tmp_path, "stop")
    assert stop["step"] == 6 and stop["reason"] == "gap_grew"
    assert stop["best_step"] == 2 and stop["best_value"] == 0.1
    assert "val_loss" in stop["message"]
    assert probe_steps(tmp_path) == [0, 2, 4, 6]


# -- safety ---------------------------------------------------------------------------------------
def test_probing_leaves_training_bit_identical(tmp_path):
    def train(callbacks: list) -> str:
        pl.seed_everything(0)
        module = TinyLM(dropout=0.1, shuffle=True)
        make_trainer(tmp_path, callbacks, deterministic=True).fit(module)
        return weights_digest(module.model)

    with_probe = train([fairness(tmp_path)])
    assert probe_steps(tmp_path) == [0, 2, 4, 6]
    assert with_probe == train([])


# -- failures -------------------------------------------------------------------------------------
def test_failed_probes_are_logged_and_training_goes_on(tmp_path, caplog):
    callback = fairness(tmp_path, probe=FailingProbe(shared_tokenizer(), fail_on=(0, 1)), on_error="warn")
    trainer = make_trainer(tmp_path, [callback])
    with caplog.at_level(logging.ERROR, logger="fairness_callback"):
        trainer.fit(TinyLM())

    assert trainer.global_step == 6
    failures = [record for record in caplog.records if record.name == "fairness_callback"]
    assert [record.getMessage() for record in failures] == [
        f"fairness probe at step {step} failed; training goes on" for step in (0, 2)
    ]
    assert all("injected by the test" in str(record.exc_info[1]) for record in failures)
    assert probe_steps(tmp_path) == [4, 6]
    assert callback.last_metrics is not None


def test_failed_probe_ends_training_with_on_error_raise(tmp_path):
    callback = fairness(tmp_path, probe=FailingProbe(shared_tokenizer(), fail_on=(1,)), on_error="raise")
    trainer = make_trainer(tmp_path, [callback])
    with pytest.raises(RuntimeError, match="injected by the test"):
        trainer.fit(TinyLM())
    assert trainer.global_step == 2


# -- resume ---------------------------------------------------------------------------------------
def test_resume_restores_the_stopping_state_and_appends_the_history(tmp_path):
    tokenizer = shared_tokenizer()
    # The first run ends at step 4 (gaps 0.3, 0.1, 0.2: one worse probe); the resumed one is fed the
    # rest of GROWING_GAPS and must stop at step 6, as the uninterrupted run of the test above does.
    checkpoint = ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    first = fairness(tmp_path, probe=ScriptedGapProbe(tokenizer, GROWING_GAPS[:3]), early_stopping=point_rule(patience=2))
    make_trainer(tmp_path, [first, checkpoint], max_steps=4, enable_checkpointing=True, **VALIDATE).fit(TinyLM())
    (path,) = (tmp_path / "ckpt").glob("*step=4.ckpt")
    saved = torch.load(path, weights_only=False)["callbacks"][first.state_key]
    assert saved["last_probed_step"] == 4
    assert (saved["early_stopping"]["best"], saved["early_stopping"]["best_step"], saved["early_stopping"]["wait"]) == (0.1, 2, 1)

    second = fairness(tmp_path, probe=ScriptedGapProbe(tokenizer, GROWING_GAPS[3:]), early_stopping=point_rule(patience=2))
    trainer = make_trainer(tmp_path, [second], max_steps=20, **VALIDATE)
    trainer.fit(TinyLM(), ckpt_path=path)

    assert trainer.global_step == 6
    assert second.stopped_reason is StopReason.GAP_GREW
    assert second.tracker.probe.calls == 1  # step 6 only: step 4 was probed before the checkpoint
    everything = read_history(tmp_path / "history.jsonl")
    records = [record for record in everything if record["event"] != "run_start"]
    assert [(record["event"], record["step"]) for record in records] == [
        ("probe", 0),
        ("probe", 2),
        ("probe", 4),
        ("probe", 6),
        ("stop", 6),
    ]
    # one run: the resumed fit continues the run id saved in the checkpoint, and says it resumed
    assert [r["resumed"] for r in everything if r["event"] == "run_start"] == [False, True]
    assert {r["run_id"] for r in everything} == {saved["run_id"]}
    resumed = records[3]
    assert (resumed["stopping/best"], resumed["stopping/best_step"], resumed["stopping/wait"]) == (0.1, 2, 2)
    assert records[4]["best_step"] == 2


def test_two_callbacks_keep_their_own_state_and_history_through_a_resume(tmp_path):
    tokenizer = shared_tokenizer()

    def pair(gaps_a: list[float], gaps_b: list[float]) -> list[LightningFairnessCallback]:
        return [
            LightningFairnessCallback(
                every_n_steps=2, probe=ScriptedGapProbe(tokenizer, gaps), early_stopping=point_rule(patience=9), name=name
            )
            for name, gaps in (("a", gaps_a), ("b", gaps_b))
        ]

    checkpoint = ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    first = pair([0.01, 0.02, 0.03], [0.05, 0.04, 0.03])
    make_trainer(tmp_path, [*first, checkpoint], max_steps=4, enable_checkpointing=True).fit(TinyLM())
    (path,) = (tmp_path / "ckpt").glob("*step=4.ckpt")
    states = torch.load(path, weights_only=False)["callbacks"]
    assert states["LightningFairnessCallback{'name': 'a'}"]["early_stopping"]["wait"] == 2
    assert states["LightningFairnessCallback{'name': 'b'}"]["early_stopping"]["best_step"] == 4

    a, b = pair([0.04], [0.01])
    make_trainer(tmp_path, [a, b], max_steps=6).fit(TinyLM(), ckpt_path=path)
    assert (a.tracker.early_stopping.best, a.tracker.early_stopping.wait) == (0.01, 3)
    assert (b.tracker.early_stopping.best, b.tracker.early_stopping.best_step) == (0.01, 6)
    for name, gaps in (("a", [0.01, 0.02, 0.03, 0.04]), ("b", [0.05, 0.04, 0.03, 0.01])):
        records = read_history(tmp_path / f"fairness_history-{name}.jsonl")
        assert [r["jsdp/gap"] for r in records if r["event"] == "probe"] == gaps
        assert len({r["run_id"] for r in records}) == 1


def test_two_callbacks_that_would_share_state_or_history_are_refused(tmp_path):
    probe = small_probe(shared_tokenizer())
    same_key = [LightningFairnessCallback(every_n_steps=2, probe=probe) for _ in range(2)]
    with pytest.raises(RuntimeError, match=r"state_key. must be unique"):  # Lightning's own check of the keys
        make_trainer(tmp_path, same_key)
    same_file = [LightningFairnessCallback(every_n_steps=n, probe=probe) for n in (2, 3)]
    with pytest.raises(ValueError, match=r"write the same history file"):
        make_trainer(tmp_path, same_file).fit(TinyLM())


def test_a_checkpoint_of_0_1_0_still_resumes(tmp_path):
    from fairness_callback.integrations.lightning import OLD_STATE_KEY

    def make() -> LightningFairnessCallback:
        return fairness(
            tmp_path, probe=ScriptedGapProbe(shared_tokenizer(), [0.01, 0.02, 0.03]), early_stopping=point_rule(patience=9)
        )

    first = make()
    checkpoint = ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    make_trainer(tmp_path, [first, checkpoint], max_steps=4, enable_checkpointing=True).fit(TinyLM())
    (path,) = (tmp_path / "ckpt").glob("*step=4.ckpt")
    content = torch.load(path, weights_only=False)
    content["callbacks"][OLD_STATE_KEY] = content["callbacks"].pop(first.state_key)  # 0.1.0's key
    torch.save(content, path)
    resumed = make()
    make_trainer(tmp_path, [resumed], max_steps=4).fit(TinyLM(), ckpt_path=path)
    assert (resumed.tracker.early_stopping.best, resumed.tracker.early_stopping.wait) == (0.01, 2)
    assert resumed.tracker.run_id == content["callbacks"][OLD_STATE_KEY]["run_id"]


def test_the_old_class_name_still_imports_with_a_warning():
    import fairness_callback.integrations.lightning as module

    with pytest.warns(DeprecationWarning, match="now LightningFairnessCallback"):
        assert module.FairnessCallback is LightningFairnessCallback


# -- precision ------------------------------------------------------------------------------------
def test_probe_runs_under_the_trainers_autocast(tmp_path):
    module = TinyLM()
    seen = []

    def record_autocast(model, args, kwargs):
        if not model.training:  # no validation here: eval-mode forwards are the probe's
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

    module.model.register_forward_pre_hook(record_autocast, with_kwargs=True)
    callback = fairness(tmp_path)
    make_trainer(tmp_path, [callback], precision="bf16-mixed", max_steps=2).fit(module)

    assert seen == [(True, torch.bfloat16)] * 2  # steps 0 and 2: one packed batch each
    logged = callback.tracker.metrics_log.select(callback.last_metrics)
    assert logged and all(math.isfinite(value) for value in logged.values())


# -- LightningCLI ---------------------------------------------------------------------------------
def test_lightning_cli_builds_the_callback_from_yaml(tmp_path, monkeypatch):
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.setattr(sys, "argv", ["train.py"])  # LightningCLI warns about pytest's own arguments

    config = tmp_path / "config.yaml"
    config.write_text(f"""
trainer:
  accelerator: cpu
  max_steps: 2
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  enable_model_summary: false
  default_root_dir: {tmp_path}
  callbacks:
    - class_path: fairness_callback.LightningFairnessCallback
      init_args:
        every_n_steps: 2
        probe:
          class_path: {SmallTestProbe.__module__}.SmallTestProbe
        early_stopping:
          class_path: fairness_callback.FairnessEarlyStopping
          init_args:
            patience: 2
        history_path: {tmp_path / "history.jsonl"}
        on_error: raise
model:
  lr: 0.001
""")
    cli = LightningCLI(TinyLM, run=False, args=["--config", str(config)], save_config_callback=None)
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, LightningFairnessCallback)]
    assert callback.tracker.every_n_steps == 2
    assert isinstance(callback.tracker.probe, SmallTestProbe)
    assert callback.tracker.early_stopping.patience == 2
    assert callback.tracker.loss_key == "val_loss"
    cli.trainer.fit(cli.model)
    assert probe_steps(tmp_path) == [0, 2]


# -- distributed (subprocesses) -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_ranks_agree_and_stop_together(tmp_path):
    run_script([str(DIST / "lightning_ddp.py"), str(tmp_path)], tmp_path)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]

    watch = [report["watch"] for report in ranks]
    for report in watch:
        assert report["global_step"] == 4
        assert [probe["step"] for probe in report["probes"]] == [0, 2, 4]
        assert report["last_metrics"] == report["probes"][-1]["metrics"]
    assert watch[0]["probes"] == watch[1]["probes"]  # every step and every metric, exactly
    # The step-4 probe is of the final weights; one process scoring every prompt gives the same.
    reference = probe_reference(tmp_path / "final_weights.pt")
    # rel 1e-5: 2 ranks batch other sentences together than 1 (prefix-cache path): float32 rounding
    assert watch[0]["last_metrics"] == pytest.approx(reference, rel=1e-5)

    stop = [report["stop"] for report in ranks]
    assert [report["global_step"] for report in stop] == [6, 6]
    assert [[probe["step"] for probe in report["probes"]] for report in stop] == [[0, 2, 4, 6]] * 2
    assert stop[0]["stopped_reason"] == StopReason.GAP_GREW_NO_LOSS.value
    assert stop[1]["stopped_reason"] is not None  # rank 1's own policy never fired: it stopped on rank 0's vote
    stops = [record for record in read_history(tmp_path / "stop.jsonl") if record["event"] == "stop"]
    assert [(record["step"], record["reason"]) for record in stops] == [(6, "gap_grew_no_loss")]  # rank 0 writes


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp2_sharded_probe_matches_the_full_model(tmp_path):
    # --standalone picks a free port, so a concurrent torchrun elsewhere on the machine cannot collide.
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run_script([*torchrun, str(DIST / "fsdp2_probe.py"), str(tmp_path)], tmp_path)
    rank0, rank1 = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    for part in ("loop", "lightning"):  # a plain torch loop; Lightning's ModelParallelStrategy with the callback
        assert rank0[part] == rank1[part], part
        assert rank0[part] == pytest.approx(probe_reference(tmp_path / f"{part}_weights.pt"), rel=1e-5), part
    assert probe_steps(tmp_path) == [0, 2]


# -- example --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_example_script_runs_in_fast_mode(tmp_path):
    out = tmp_path / "run"
    done = run_script([str(REPO / "examples" / "lightning_train.py"), "--max-steps", "4", "--output-dir", str(out)], tmp_path)
    history_path = out / "fairness_history.jsonl"
    assert [record["step"] for record in read_history(history_path) if record["event"] == "probe"] == [0]
    assert list(out.glob("tensorboard/**/events.out.tfevents.*"))
    assert str(history_path) in done.stdout


# -- one history per run --------------------------------------------------------------------------
@pytest.mark.slow
def test_two_fits_keep_their_histories_apart(tmp_path, monkeypatch):
    """With a logger, each fit writes into its own trainer.log_dir (version_0, version_1); without
    one, two fits in one folder share a file but each line carries its run's id, and the report
    of each run has that run's probes only."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from fairness_callback.offline.report import write_report
    from fairness_callback.training.history import history_runs

    monkeypatch.chdir(tmp_path)  # no default_root_dir: Lightning's default is the working directory
    callback = LightningFairnessCallback(every_n_steps=2, probe=small_probe(shared_tokenizer()))
    for max_steps in (4, 2):
        trainer = make_trainer(
            tmp_path, [callback], max_steps=max_steps, logger=TensorBoardLogger(tmp_path / "tb"), default_root_dir=None
        )
        trainer.fit(TinyLM())
    assert not (tmp_path / "fairness_history.jsonl").exists()  # not in the working directory
    for version, steps in (("version_0", [0, 2, 4]), ("version_1", [0, 2])):
        records = read_history(tmp_path / "tb" / "lightning_logs" / version / "fairness_history.jsonl")
        assert [r["step"] for r in records if r["event"] == "probe"] == steps, version
        assert len({r["run_id"] for r in records}) == 1

    shared = LightningFairnessCallback(every_n_steps=2, probe=small_probe(shared_tokenizer()))
    for max_steps in (4, 2):
        make_trainer(tmp_path / "plain", [shared], max_steps=max_steps).fit(TinyLM())
    path = tmp_path / "plain" / "fairness_history.jsonl"
    runs = history_runs(read_history(path))
    assert [run.num_probes for run in runs] == [3, 2] and runs[0].run_id != runs[1].run_id
    first = write_report(path, tmp_path / "report_first", run_id=runs[0].run_id)
    latest = write_report(path, tmp_path / "report_latest")
    assert (first.num_probes, first.final_step) == (3, 4)
    assert (latest.num_probes, latest.final_step) == (2, 2)  # the latest run by default, not a mix
