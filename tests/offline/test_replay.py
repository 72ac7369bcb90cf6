"""Offline replay of checkpoint series: HF folders, Lightning .ckpt, resume, broken checkpoints, CLI."""

import shutil

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from transformers import Trainer, TrainingArguments, default_data_collator

from fairness_callback.cli import main
from fairness_callback.integrations.hf import HFFairnessCallback as HFCallback
from fairness_callback.integrations.lightning import LightningFairnessCallback as LightningCallback
from fairness_callback.offline.replay import CheckpointError, Loader, find_checkpoints, replay, step_from_name
from fairness_callback.training.history import read_history
from support import make_dataset, make_model, make_tokenizer, small_probe


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory, tokenizer):
    """A 4-step HF Trainer run with the callback, saving checkpoint-2 and checkpoint-4 (with the tokenizer)."""
    out = tmp_path_factory.mktemp("hf_run")
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=4,
        per_device_train_batch_size=8,
        save_strategy="steps",
        save_steps=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        learning_rate=1e-3,
    )
    callback = HFCallback(every_n_steps=2, probe=small_probe(tokenizer))
    Trainer(
        model=make_model(tokenizer),
        args=args,
        train_dataset=make_dataset(tokenizer, n=64),
        processing_class=tokenizer,
        data_collator=default_data_collator,
        callbacks=[callback],
    ).train()
    return out


def live_probes(out):
    return {r["step"]: r for r in read_history(out / "fairness_history.jsonl") if r["event"] == "probe"}


def test_step_from_name():
    assert step_from_name("checkpoint-1200") == 1200
    assert step_from_name("step80000") == 80000
    assert step_from_name("epoch=0-step=500.ckpt") == 500
    assert step_from_name("model_300") == 300
    assert step_from_name("final") is None


@pytest.mark.slow
def test_replayed_hf_checkpoints_equal_the_live_probe(hf_run, tokenizer, tmp_path):
    checkpoints = find_checkpoints([hf_run])
    assert [(c.step, c.kind) for c in checkpoints] == [(2, "hf"), (4, "hf")]
    history = tmp_path / "replay.jsonl"
    summary = replay(checkpoints, small_probe(tokenizer), history, Loader(), progress=False)
    assert summary.probed == [2, 4] and not summary.failed
    live = live_probes(hf_run)
    start, *probes = read_history(history)
    assert start["event"] == "run_start" and start["run_id"] == summary.run_id and len(probes) == 2
    for record in probes:
        assert record["checkpoint"].endswith(f"checkpoint-{record['step']}")
        for key in ("ar/male", "ar/female", "jsdp/male", "jsdp/female", "jsdp/not_specified", "jsdp/gap", "mwu_p/jsdp"):
            assert record[key] == pytest.approx(live[record["step"]][key], rel=1e-6, abs=1e-12), key
        assert "by_seed" in record and "jsdp/gap_sudden" in record


@pytest.mark.slow
def test_resume_and_a_broken_checkpoint(hf_run, tokenizer, tmp_path):
    series = tmp_path / "series"
    for step in (2, 4):
        shutil.copytree(hf_run / f"checkpoint-{step}", series / f"checkpoint-{step}")
    broken = series / "checkpoint-3"
    broken.mkdir()
    shutil.copy(series / "checkpoint-2" / "config.json", broken / "config.json")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    history = tmp_path / "h.jsonl"
    probe = small_probe(tokenizer)

    first = replay(find_checkpoints([series / "checkpoint-2"]), probe, history, Loader(), progress=False)
    assert first.probed == [2]  # an interrupted replay: only the first checkpoint done
    again = replay(find_checkpoints([series]), probe, history, Loader(), progress=False)
    assert again.skipped == [2] and again.probed == [4]
    assert [key for key, _ in again.failed] == [str(broken)]
    records = read_history(history)
    assert [r["step"] for r in records if r["event"] == "probe"] == [2, 4]
    assert again.run_id == first.run_id and again.resumed and not first.resumed  # one run, continued
    assert {r["run_id"] for r in records} == {first.run_id}
    starts = [r for r in records if r["event"] == "run_start"]
    assert [s["resumed"] for s in starts] == [False, True]
    assert starts[0]["framework"] == "replay" and starts[0]["checkpoints"] == str(series.resolve())
    assert starts[0]["probe_set"] == "test" and starts[0]["seeds"] == [0]
    third = replay(find_checkpoints([series]), probe, history, Loader(), progress=False)
    assert third.probed == [] and third.skipped == [2, 4] and len(third.failed) == 1  # tried again, still broken
    assert len(read_history(history)) == len(records)  # nothing probed: no run_start line either


class TinyLM(pl.LightningModule):
    """The tiny GPT-NeoX at ``self.model``, trained on its LM loss."""

    def __init__(self, tokenizer):
        super().__init__()
        self.model = make_model(tokenizer)
        self.tokenizer = tokenizer

    def training_step(self, batch, batch_idx):
        return self.model(**batch).loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


@pytest.mark.slow
def test_lightning_ckpt_replay_equals_the_live_probe(tokenizer, tmp_path):
    torch.manual_seed(0)
    callback = LightningCallback(every_n_steps=2, probe=small_probe(tokenizer), history_path=tmp_path / "live.jsonl")
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback, saver],
    )
    trainer.fit(TinyLM(tokenizer), torch.utils.data.DataLoader(make_dataset(tokenizer, n=64), batch_size=8))
    files = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert [step_from_name(f.name) for f in files] == [2, 4]
    history = tmp_path / "replay.jsonl"
    tokenizer.save_pretrained(tmp_path / "tok")
    assert (
        main(
            [
                "replay",
                *map(str, files),
                "--history",
                str(history),
                "--model-factory",
                "support:tiny_model_factory",
                "--tokenizer",
                str(tmp_path / "tok"),
                "--seeds",
                "0",
            ]
        )
        == 0
    )
    live = {r["step"]: r for r in read_history(tmp_path / "live.jsonl") if r["event"] == "probe"}
    replayed = [r for r in read_history(history) if r["event"] == "probe"]
    assert [r["step"] for r in replayed] == [2, 4]
    assert all(r["n/male"] > 0 for r in replayed)
    # the CLI probes the built-in set, the live callback a subset: compare the Python API on the same probe
    again = replay(
        find_checkpoints(files),
        small_probe(tokenizer),
        tmp_path / "api.jsonl",
        Loader(model_factory=lambda: make_model(tokenizer)),
        progress=False,
    )
    assert again.probed == [2, 4]
    for record in (r for r in read_history(tmp_path / "api.jsonl") if r["event"] == "probe"):
        assert record["jsdp/gap"] == pytest.approx(live[record["step"]]["jsdp/gap"], rel=1e-6)


def test_find_checkpoints_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="'/nonexistent/ckpt' does not exist"):
        find_checkpoints(["/nonexistent/ckpt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="is not a checkpoint: expected a save_pretrained directory"):
        find_checkpoints([tmp_path / "empty"])
    final = tmp_path / "final"
    final.mkdir()
    (final / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="cannot tell the step of .*final.*give --steps"):
        find_checkpoints([final])
    assert find_checkpoints([final], steps=[7])[0].step == 7
    with pytest.raises(CheckpointError, match="--steps gives 2 steps for 1 checkpoints"):
        find_checkpoints([final], steps=[1, 2])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["replay", "--history", "h.jsonl"], "replay needs checkpoint PATHs or --model ID --revisions"),
        (["replay", "/nonexistent/x", "--history", "h.jsonl"], "checkpoint path '/nonexistent/x' does not exist"),
        (["replay", "--model", "EleutherAI/pythia-160m", "--history", "h.jsonl"], "--model needs --revisions"),
        (["replay", "--model", "m", "--revisions", "main", "--history", "h.jsonl"], "cannot tell the step of revision 'main'"),
        (["replay", "x.ckpt", "--history", "h.jsonl", "--model-factory", "nomodule"], "does not exist"),
    ],
)
def test_replay_cli_errors(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert message in str(exit_info.value.code)


def test_model_factory_spec_errors():
    from fairness_callback.offline.replay import import_factory

    with pytest.raises(ValueError, match="must look like 'package.module:function'"):
        import_factory("nomodule")
    with pytest.raises(ValueError, match="'support:nothing'"):
        import_factory("support:nothing")


# -- run ids, with a stand-in probe (no model) ---------------------------------------------------
from fairness_callback.offline.replay import replay_source  # noqa: E402
from fairness_callback.probe import ProbeResult  # noqa: E402
from fairness_callback.training.history import history_runs  # noqa: E402


class StepProbe:
    """Stands in for a FairnessProbe: the "model" is the checkpoint's step, the gap is step / 100."""

    def run(self, model):
        return ProbeResult({"jsdp/gap": model / 100, "mwu_p/jsdp": 0.5}, [], {})


def step_loader(checkpoint):
    return checkpoint.step


def series(root, *steps):
    for step in steps:
        (root / f"checkpoint-{step}").mkdir(parents=True)
        (root / f"checkpoint-{step}" / "config.json").write_text("{}")
    return root


def fake_replay(paths, history, **kwargs):
    return replay(find_checkpoints(paths), StepProbe(), history, step_loader, progress=False, **kwargs)


@pytest.mark.slow
def test_replay_twice_continues_one_run_another_source_gets_a_new_one(tmp_path):
    one, other = series(tmp_path / "one", 2, 4, 6), series(tmp_path / "other", 2, 4)
    history = tmp_path / "h.jsonl"
    first = fake_replay([one / "checkpoint-2"], history)
    second = fake_replay([one], history)
    assert second.run_id == first.run_id and second.resumed and second.skipped == [2] and second.probed == [4, 6]
    third = fake_replay([other], history)  # another folder: a new run, whose steps 2 and 4 are probed, not skipped
    assert third.run_id != first.run_id and not third.resumed and third.probed == [2, 4] and third.skipped == []
    runs = history_runs(read_history(history))
    assert [(r.run_id, r.steps, r.num_probes, r.resumed) for r in runs] == [
        (first.run_id, "2-6", 3, 1),
        (third.run_id, "2-4", 2, 0),
    ]
    assert runs[1].info["checkpoints"] == str(other.resolve()) == replay_source(find_checkpoints([other]))
    # one's run is found again although it is not the latest run; skipped keys come from it only
    series(one, 8)
    fourth = fake_replay([one], history)
    assert fourth.run_id == first.run_id and fourth.skipped == [2, 4, 6] and fourth.probed == [8]
    # --run-id continues a run explicitly, even from another source
    series(other, 10)
    fifth = fake_replay([other / "checkpoint-10"], history, run_id=first.run_id)
    assert fifth.run_id == first.run_id and fifth.probed == [10]
    assert [r.num_probes for r in history_runs(read_history(history))] == [5, 2]
    series(one, 12)  # one's run is still found by its first source after taking another's checkpoint
    assert fake_replay([one], history).run_id == first.run_id


def test_replay_run_id_errors_and_clashing_steps(tmp_path):
    history = tmp_path / "h.jsonl"
    done = fake_replay([series(tmp_path / "a", 2)], history)
    with pytest.raises(ValueError, match=rf"h.jsonl: no run 'nope'; its runs: {done.run_id} \(steps 2, 1 probe"):
        fake_replay([tmp_path / "a"], history, run_id="nope")
    other = series(tmp_path / "b", 2)  # another checkpoint at step 2
    with pytest.raises(ValueError, match=r"cannot take these checkpoints without mixing two series: step 2"):
        fake_replay([other], history, run_id=done.run_id)
    # same folder, other checkpoints at the same steps (save_pretrained dirs with --steps): a new run
    (tmp_path / "a" / "final").mkdir()
    (tmp_path / "a" / "final" / "config.json").write_text("{}")
    again = replay(find_checkpoints([tmp_path / "a" / "final"], steps=[2]), StepProbe(), history, step_loader, progress=False)
    assert again.run_id != done.run_id and again.probed == [2]
