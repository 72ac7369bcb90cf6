"""Faults a user meets (issue #18), in one process: out of memory, a full disk, a torn history, a typo
in the stop rule, a tokenizer that does not fit the model, a failing policy or suite member.
The same faults on one rank of two are in tests/training/test_faults_distributed.py."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch

from fairness_callback import FairnessEarlyStopping, FairnessProbe, FairnessTracker, ProbeSet, StopReason
from fairness_callback.demo.tiny_model import tiny_gpt_neox
from fairness_callback.probe.faults import ProbeFailure, describe, is_out_of_memory
from fairness_callback.training.history import HistoryWriter, read_history, read_run
from fairness_callback.training.records import ProbeRecord, parse_record
from support import Fault, ScriptedGapProbe, make_model, make_tokenizer, point_rule, small_probe


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def records(path: Path, event: str | None = None) -> list[dict]:
    return [r for r in read_history(path) if event is None or r["event"] == event]


# -- out of memory -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("path", ["tree", "cache", "off"])
def test_out_of_memory_halves_the_batch_and_gives_the_unconstrained_numbers(tokenizer, path, caplog):
    model = make_model(tokenizer).eval()
    reference = small_probe(tokenizer, sentences=12, seeds=(0, 1))
    reference.prefix_sharing = path
    expected = reference.run(model)
    probe = small_probe(tokenizer, sentences=12, seeds=(0, 1))
    probe.prefix_sharing = path
    fault = Fault(probe, model, "oom", budget=150)  # about 8 prompts of the plain path, 2 tree rows
    with caplog.at_level(logging.WARNING, logger="fairness_callback"):
        result = probe.run(model)
    assert fault.fired >= 1 and probe.batch_limit is not None and probe.batch_limit < probe.batch_size
    backoffs = [r for r in caplog.records if "ran out of memory" in r.getMessage()]
    assert len(backoffs) == fault.fired  # one line per halving, none per batch
    assert [r["rank"] for r in result.records] == [r["rank"] for r in expected.records]
    for key, value in expected.metrics.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
    fired = fault.fired
    probe.run(model)  # the size that worked is kept: no new out-of-memory
    assert fault.fired == fired


def test_out_of_memory_at_one_prompt_fails_the_probe_and_training_goes_on(tokenizer, tmp_path):
    model = make_model(tokenizer)
    probe = small_probe(tokenizer, sentences=4)
    Fault(probe, model, "oom", budget=3)  # no prompt fits
    tracker = FairnessTracker(every_n_steps=1, probe=probe, history_path=tmp_path / "h.jsonl")
    outcome = tracker.start(model)
    assert outcome.failed and outcome.metrics is None and probe.batch_limit == 1
    assert list(outcome.failures) == [None] and outcome.failures[None][0].startswith("OutOfMemoryError: CUDA out of memory")
    (failed,) = records(tmp_path / "h.jsonl", "probe_failed")
    assert failed["step"] == 0 and failed["ranks"] == {"0": outcome.failures[None][0]}
    assert failed["error_type"] == "OutOfMemoryError" and failed["message"].startswith("CUDA out of memory")


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert describe(KeyError("religion/acc/male")) == "KeyError: 'religion/acc/male'"
    assert describe(ValueError("first line\nsecond")) == "ValueError: first line"


# -- the history: full disk, torn lines, unwritable paths, resumes ----------------------------------
def test_a_full_disk_at_the_stopping_probe_stops_training_and_keeps_every_line(tokenizer, tmp_path, caplog):
    path = tmp_path / "h.jsonl"
    tracker = FairnessTracker(
        every_n_steps=2,
        probe=ScriptedGapProbe(tokenizer, [0.01, 0.02, 0.03]),
        early_stopping=point_rule(patience=2),
        history_path=path,
    )
    model = make_model(tokenizer)
    tracker.start(model)
    tracker.step(model, 2)
    tracker._recorder._writer.path = Path("/dev/full")  # the disk fills: every write now fails with ENOSPC
    with caplog.at_level(logging.ERROR, logger="fairness_callback"):
        outcome = tracker.step(model, 4)
    assert outcome.should_stop and tracker.stopped_reason is StopReason.GAP_GREW_NO_LOSS
    assert "No space left on device" in caplog.text and "training goes on" in caplog.text
    assert [json.loads(line)["event"] for line in tracker._recorder._writer.pending] == ["probe", "stop"]
    tracker._recorder._writer.path = path  # space again: the next write catches up, in order
    tracker._recorder._append(ProbeRecord(step=6))
    assert [(r["event"], r.get("step")) for r in records(path)] == [
        ("run_start", 0),
        ("probe", 0),
        ("probe", 2),
        ("probe", 4),
        ("stop", 4),
        ("probe", 6),
    ]


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "h.jsonl"
    writer = HistoryWriter(path)
    writer.append(parse_record({"event": "probe", "step": 0}))
    before = path.read_bytes()
    real_write = __import__("os").write

    def short_then_full(fd, data):  # half a line reaches the disk, then it is full
        monkeypatch.setattr("os.write", lambda fd, data: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        return real_write(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr("os.write", short_then_full)
    with pytest.raises(OSError, match="No space left"):
        writer.append(parse_record({"event": "probe", "step": 2}))
    assert path.read_bytes() == before and len(writer.pending) == 1
    monkeypatch.setattr("os.write", real_write)
    writer.append(parse_record({"event": "probe", "step": 4}))
    assert [r["step"] for r in read_history(path)] == [0, 2, 4]


def test_an_unwritable_history_path_is_an_error_at_start_naming_it(tokenizer, tmp_path):
    (tmp_path / "a_file").write_text("")
    path = tmp_path / "a_file" / "h.jsonl"  # its folder is a file
    tracker = FairnessTracker(every_n_steps=2, probe=small_probe(tokenizer, sentences=4), history_path=path)
    with pytest.raises(OSError, match=f"history_path {path} cannot be written"):
        tracker.start(make_model(tokenizer))


def test_the_torn_line_repair_keeps_every_line_that_parses(tmp_path, caplog):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps({"step": 0}))  # one valid line, no newline (a writer stopped before it)
    HistoryWriter(path).append(parse_record({"step": 1}))
    assert [r["step"] for r in read_history(path)] == [0, 1]
    path.write_text(json.dumps({"step": 0}) + "\n" + '{"step": 1, "jsdp/ga')  # a crash mid-write
    with caplog.at_level(logging.WARNING, logger="fairness_callback"):
        HistoryWriter(path).append(parse_record({"step": 2}))
    assert [r["step"] for r in read_history(path)] == [0, 2]
    assert "does not parse; removed" in caplog.text and "(20 bytes)" in caplog.text


def test_unparseable_lines_are_named_and_skipped_unless_strict(tmp_path, caplog):
    path = tmp_path / "h.jsonl"
    path.write_text('{"step": 0}\nnot json\n[1, 2]\n{"step": 3}\n')
    with caplog.at_level(logging.WARNING, logger="fairness_callback"):
        assert [r["step"] for r in read_history(path, strict=False)] == [0, 3]
    assert f"{path}, line 2: skipped, not a JSON object" in caplog.text
    assert f"{path}, line 3: skipped, expected a JSON object, got list" in caplog.text
    with pytest.raises(ValueError, match="line 2: not a JSON object"):
        read_history(path)


def test_a_resumed_run_supersedes_its_lines_past_the_resume_step(tokenizer, tmp_path):
    path = tmp_path / "h.jsonl"
    first = FairnessTracker(
        every_n_steps=2,
        probe=ScriptedGapProbe(tokenizer, [0.01, 0.02, 0.03, 0.04]),
        early_stopping=point_rule(patience=2),
        history_path=path,
    )
    model = make_model(tokenizer)
    first.start(model)
    first.step(model, 2)
    saved_at_2 = first.state_dict()
    assert first.step(model, 4).should_stop  # the first life stopped at step 4
    resumed = FairnessTracker(
        every_n_steps=2,
        probe=ScriptedGapProbe(tokenizer, [0.005, 0.004]),
        early_stopping=point_rule(patience=2),
        history_path=path,
    )
    resumed.load_state_dict(saved_at_2)  # back to the checkpoint of step 2
    resumed.start(model, step=2)
    resumed.step(model, 4)
    run = read_run(path)
    assert [(r["event"], r.get("step")) for r in run if r["event"] != "run_start"] == [
        ("probe", 0),
        ("probe", 2),
        ("probe", 4),
    ]  # the old step-4 probe and its stop are superseded
    assert run[-1]["jsdp/gap"] == 0.005
    everything = read_history(path)
    assert sum(r["event"] == "stop" for r in everything) == 1  # still in the file, only out of the report


# -- configuration checked before training ---------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(monitor="jsdp/gapp"), r"monitor='jsdp/gapp'\): the probes have no such metric; their gap metrics: .*jsdp/gap"),
        (
            dict(monitor="jsdp/lean", stop_on_significant_only=True),
            "needs a '.../<metric>/gap' or '.../<metric>/abs_gap' monitor",
        ),
        (dict(monitor="gender/jsdp/gap"), "no such metric"),
    ],
)
def test_a_stop_rule_that_does_not_fit_the_probe_is_an_error_at_start(tokenizer, kwargs, message):
    tracker = FairnessTracker(
        every_n_steps=2, probe=small_probe(tokenizer, sentences=4), early_stopping=FairnessEarlyStopping(**kwargs)
    )
    with pytest.raises(ValueError, match=message):
        tracker.start(make_model(tokenizer))


def test_abs_gap_with_significance_reads_the_gaps_p_value(tokenizer):
    rule = FairnessEarlyStopping(monitor="jsdp/abs_gap", stop_on_significant_only=True, alpha=0.5)
    tracker = FairnessTracker(every_n_steps=1, probe=ScriptedGapProbe(tokenizer, [0.01, 0.05, 0.06, 0.07]), early_stopping=rule)
    model = make_model(tokenizer)
    outcomes = [tracker.start(model)] + [tracker.step(model, step) for step in (1, 2, 3)]
    assert not any(o.failed for o in outcomes)
    assert rule.p_value_key == "mwu_p/jsdp" and rule.best == pytest.approx(0.01)


def test_min_accuracy_reads_the_tasks_own_gap_groups(tokenizer):
    they = FairnessProbe(tokenizer, ProbeSet.builtin_they()[:6], seeds=(0,))
    gender = small_probe(tokenizer, sentences=4)
    probes = {"gender": gender, "they": they}
    rule = FairnessEarlyStopping(monitor="gender/jsdp/gap", min_accuracy=0.5)
    FairnessTracker(every_n_steps=2, probes=probes, early_stopping=rule).start(make_model(tokenizer))
    assert rule.accuracy_keys() == ("gender/acc/female", "gender/acc/male")
    custom = FairnessEarlyStopping(monitor="jsdp/gap", min_accuracy=0.5)
    with pytest.raises(
        ValueError,
        match=r"min_accuracy=0.5\): monitor 'jsdp/gap' has no acc/consistent or "
        r"acc/inconsistent; accuracies: acc/female, acc/male",
    ):
        custom.check({"jsdp/gap", "acc/male", "acc/female"}, ("consistent", "inconsistent"))


def test_min_accuracy_on_a_bbq_probe_uses_consistent_and_inconsistent():
    rule = FairnessEarlyStopping(monitor="religion/jsdp/gap", min_accuracy=0.3)
    keys = {"religion/jsdp/gap", "religion/acc/consistent", "religion/acc/inconsistent", "religion/acc/unknown"}
    rule.check(keys, ("inconsistent", "consistent"))
    decision = rule.step(0, {"religion/jsdp/gap": 0.1, "religion/acc/consistent": 0.2, "religion/acc/inconsistent": 0.9})
    assert not decision.should_stop and "accuracy 0.20 on inconsistent or consistent answers is below" in decision.message


@pytest.mark.parametrize("value", ["10", 2.5, 0, True, None])
def test_every_n_steps_must_be_an_int_of_at_least_one(tokenizer, value):
    with pytest.raises(ValueError, match=f"every_n_steps must be an int >= 1, got {value!r}"):
        FairnessTracker(every_n_steps=value, probe=small_probe(tokenizer, sentences=4))


def test_a_tokenizer_larger_than_the_models_vocabulary_is_an_error_at_start(tokenizer):
    model = tiny_gpt_neox(700, hidden_size=64, num_layers=2, seed=0)  # the tokenizer has 1,000 tokens
    tracker = FairnessTracker(every_n_steps=2, probe=small_probe(tokenizer, sentences=4))
    with pytest.raises(
        ValueError,
        match=r"the probe (scores|feeds) token id \d+, but the model's (output|input) "
        r"vocabulary has 700 tokens: the tokenizer \(1000 tokens\)",
    ):
        tracker.start(model)


def test_metric_keys_before_any_run_are_the_keys_of_a_run(tokenizer):
    probe = small_probe(tokenizer, sentences=6, seeds=(0, 1))
    assert probe.metric_keys == set(probe.run(make_model(tokenizer)).metrics)
    they = FairnessProbe(tokenizer, ProbeSet.builtin_they()[:6], seeds=(0,))
    assert they.metric_keys == set(they.run(make_model(tokenizer)).metrics)


# -- the policy and the suite ------------------------------------------------------------------
class TerseStopping(FairnessEarlyStopping):
    """A policy of one's own whose stop message does not start with "stopping"."""

    def step(self, step, metrics):
        decision = super().step(step, metrics)
        return type(decision)(decision.should_stop, decision.reason, "halt: " + decision.message)


def test_the_decision_is_read_as_a_value_not_from_its_text(tokenizer):
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedGapProbe(tokenizer, [0.01, 0.02, 0.03]),
        early_stopping=TerseStopping(patience=2, min_delta=0),
    )
    model = make_model(tokenizer)
    outcomes = [tracker.start(model), tracker.step(model, 1), tracker.step(model, 2)]
    assert [o.should_stop for o in outcomes] == [False, False, True]
    assert outcomes[-1].message.startswith("halt: stopping at step 2")


class BrokenStopping(FairnessEarlyStopping):
    def step(self, step, metrics):
        raise RuntimeError("policy bug")


def test_a_failing_policy_never_drops_the_probe_line(tokenizer, tmp_path):
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=small_probe(tokenizer, sentences=4),
        early_stopping=BrokenStopping(),
        history_path=tmp_path / "h.jsonl",
    )
    model = make_model(tokenizer)
    outcomes = [tracker.start(model), tracker.step(model, 1)]
    assert all(o.failed and o.metrics is not None and not o.should_stop for o in outcomes)
    probes = records(tmp_path / "h.jsonl", "probe")
    assert [r["step"] for r in probes] == [0, 1] and all(r["stopping/decided"] is False for r in probes)
    with pytest.raises(RuntimeError, match="policy bug"):
        FairnessTracker(
            every_n_steps=1, probe=small_probe(tokenizer, sentences=4), early_stopping=BrokenStopping(), on_error="raise"
        ).start(model)


@pytest.mark.parametrize("where", ["path", "batches", "forward", "metrics"])
def test_a_failing_second_probe_of_a_suite_keeps_the_first(tokenizer, tmp_path, where):
    model = make_model(tokenizer)
    gender = small_probe(tokenizer, sentences=4)
    they = FairnessProbe(tokenizer, ProbeSet.builtin_they()[:6], seeds=(0,))
    Fault(they, model, where, on_run=1)
    tracker = FairnessTracker(
        every_n_steps=1,
        probes={"gender": gender, "they": they},
        history_path=tmp_path / "h.jsonl",
        early_stopping=point_rule(monitor="gender/jsdp/gap", patience=5),
    )
    outcomes = [tracker.start(model), tracker.step(model, 1), tracker.step(model, 2)]
    assert [o.failed for o in outcomes] == [False, True, False]
    assert outcomes[1].failures == {"they": {0: f"RuntimeError: injected {where} failure"}}
    assert "gender/jsdp/gap" in outcomes[1].metrics and not any(k.startswith("they/") for k in outcomes[1].metrics)
    (failed,) = records(tmp_path / "h.jsonl", "probe_failed")
    assert (failed["step"], failed["probe"], failed["error_type"]) == (1, "they", "RuntimeError")
    assert [r["step"] for r in records(tmp_path / "h.jsonl", "probe")] == [0, 1, 2]
    assert tracker.early_stopping.best_step is not None


def test_a_suite_run_directly_raises_after_running_every_probe(tokenizer):
    from fairness_callback import ProbeSuite

    model = make_model(tokenizer)
    first, second = small_probe(tokenizer, sentences=4), small_probe(tokenizer, sentences=5)
    Fault(first, model, "forward", on_run=0)
    counter = Fault(second, model, "metrics", on_run=99)  # counts runs only
    with pytest.raises(ProbeFailure, match="probe 'a' failed on rank"):
        ProbeSuite({"a": first, "b": second}).run(model)
    assert counter.runs == 1  # the second probe ran (its collectives) though the first had failed


def test_a_failing_logger_under_on_error_raise_raises(tokenizer):
    def broken(metrics, step):
        raise OSError("logger down")

    tracker = FairnessTracker(every_n_steps=1, probe=small_probe(tokenizer, sentences=4), log=broken, on_error="raise")
    with pytest.raises(OSError, match="logger down"):
        tracker.start(make_model(tokenizer))
    assert not math.isnan(tracker.last_probed_step)


@pytest.mark.slow
def test_report_names_each_unparseable_line_and_goes_on_unless_strict(tokenizer, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "h.jsonl"
    tracker = FairnessTracker(every_n_steps=1, probe=small_probe(tokenizer, sentences=4), history_path=path)
    model = make_model(tokenizer)
    tracker.start(model)
    for step in (1, 2):
        tracker.step(model, step)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["{not json", "[1]"] + lines[2:]) + "\n")
    command = [sys.executable, "-m", "fairness_callback.cli", "report", str(path), "--out", str(tmp_path / "r")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{path}, line 3: skipped, not a JSON object" in done.stderr
    assert f"{path}, line 4: skipped, expected a JSON object, got list" in done.stderr
    assert "3 probes" in done.stdout
    strict = subprocess.run(command + ["--strict"], capture_output=True, text=True, timeout=300)
    assert strict.returncode != 0 and f"{path}, line 3: not a JSON object" in strict.stderr


def test_hf_trainer_with_an_unwritable_history_path_fails_before_the_first_step(tokenizer, tmp_path):
    from transformers import Trainer, TrainingArguments, default_data_collator

    from fairness_callback.integrations.hf import HFFairnessCallback
    from support import make_dataset

    (tmp_path / "a_file").write_text("")
    callback = HFFairnessCallback(
        every_n_steps=2, probe=small_probe(tokenizer, sentences=4), history_path=tmp_path / "a_file" / "h.jsonl"
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=2,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        save_strategy="no",
    )
    trainer = Trainer(
        model=make_model(tokenizer),
        args=args,
        train_dataset=make_dataset(tokenizer, n=8),
        data_collator=default_data_collator,
        callbacks=[callback],
    )
    with pytest.raises(OSError, match="a_file/h.jsonl cannot be written"):
        trainer.train()
    assert trainer.state.global_step == 0
