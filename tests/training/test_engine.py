"""Unit tests of the engine, :class:`FairnessTracker`, with a probe whose scores are scripted.

No model runs and nothing trains: :class:`ScriptedProbe` is a real ``FairnessProbe`` (prompts,
metric keys, metrics, confidence intervals and per-sentence units all computed as in a real run)
whose ``score`` returns seeded random option scores instead of scoring a model, optionally with a
scripted ``jsdp/gap`` per run (as ``support.ScriptedGapProbe`` does over a real model) and runs
that raise. The "model" is a one-weight ``torch.nn.Linear``: the engine only hands it on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest
import torch

from fairness_callback import FairnessEarlyStopping, FairnessProbe, FairnessTracker, ProbeResult, StopReason
from fairness_callback.probe.scoring import OptionScores
from fairness_callback.training.history import history_runs, read_history, select_run
from support import point_rule, small_probe


class ScriptedProbe(FairnessProbe):
    """A probe of 20 built-in sentences whose scores are scripted, not a model's.

    Run ``c`` (0-based) scores every prompt with random option probabilities from a generator seeded
    with ``c``; ``gaps``: the ``jsdp/gap`` (and ``jsdp/abs_gap``) of run ``c`` is ``gaps[c]`` (the
    last one after the list); ``fail_on``: the runs that raise a RuntimeError.
    """

    def __init__(self, tokenizer, gaps: Sequence[float] = (), fail_on: Sequence[int] = ()) -> None:
        base = small_probe(tokenizer)
        super().__init__(tokenizer, base.probe_set, seeds=base.config.seeds)
        self.gaps, self.fail_on = list(gaps), set(fail_on)
        self.calls = 0
        self.models: list = []

    def score(self, model, indices=None, distributed: bool = False) -> OptionScores:
        call = self.calls
        self.calls += 1
        self.models.append(model)
        if call in self.fail_on:
            raise RuntimeError(f"scripted probe failure (run {call})")
        generator = torch.Generator().manual_seed(call)
        probs = torch.rand(len(self.prompts), len(self.task.groups), generator=generator) + 0.05
        probs = 0.5 * probs / probs.sum(dim=1, keepdim=True)  # half the vocabulary's mass on the options
        order = probs.argsort(dim=1, descending=True)
        ranks = torch.empty_like(probs, dtype=torch.float64)
        ranks.scatter_(1, order, torch.arange(1, probs.shape[1] + 1, dtype=torch.float64).repeat(len(probs), 1))
        return OptionScores(ranks, probs.log(), "off")

    def run(self, model, distributed: bool = False) -> ProbeResult:
        result = super().run(model, distributed=distributed)
        if self.gaps:
            gap = self.gaps[min(self.calls - 1, len(self.gaps) - 1)]
            result.metrics["jsdp/gap"], result.metrics["jsdp/abs_gap"] = gap, abs(gap)
        return result


MODEL = torch.nn.Linear(1, 1)


def lines(path) -> list[dict]:
    """The history file's lines, read now (what another process would see mid-run)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(path, kind: str) -> list[dict]:
    return [line for line in lines(path) if line["event"] == kind]


@pytest.fixture()
def probe(bpe_tokenizer) -> ScriptedProbe:
    return ScriptedProbe(bpe_tokenizer)


# -- (a) when it probes ---------------------------------------------------------------------------


def test_probes_at_step_zero_and_every_n_steps(probe, tmp_path):
    tracker = FairnessTracker(every_n_steps=3, probe=probe, history_path=tmp_path / "h.jsonl")
    outcomes = [tracker.start(MODEL)] + [tracker.step(MODEL, step) for step in range(1, 11)]
    assert [o.step for o in outcomes if o.probed] == [0, 3, 6, 9]
    assert all(o.metrics is not None for o in outcomes if o.probed)
    assert all(o.metrics is None and not o.should_stop for o in outcomes if not o.probed)
    assert probe.calls == 4 and all(model is MODEL for model in probe.models)
    assert [line["step"] for line in events(tmp_path / "h.jsonl", "probe")] == [0, 3, 6, 9]


def test_never_probes_one_step_twice_and_probe_at_start_off(bpe_tokenizer):
    probe = ScriptedProbe(bpe_tokenizer)
    tracker = FairnessTracker(every_n_steps=2, probe=probe)
    assert tracker.start(MODEL).probed
    assert not tracker.start(MODEL).probed  # step 0 again (a second start at the same step)
    assert not tracker.step(MODEL, 0).probed
    assert tracker.step(MODEL, 2).probed
    assert not tracker.step(MODEL, 2).probed  # e.g. a callback event fired twice for one step
    assert probe.calls == 2 and tracker.last_probed_step == 2

    quiet = ScriptedProbe(bpe_tokenizer)
    late = FairnessTracker(every_n_steps=2, probe=quiet, probe_at_start=False)
    assert not late.start(MODEL).probed
    assert [late.step(MODEL, s).probed for s in (1, 2, 3, 4)] == [False, True, False, True]
    assert quiet.calls == 2


def test_resumed_tracker_keeps_its_schedule_and_run_id(bpe_tokenizer, tmp_path):
    history = tmp_path / "h.jsonl"
    first = FairnessTracker(every_n_steps=2, probe=ScriptedProbe(bpe_tokenizer), history_path=history)
    first.start(MODEL)
    for step in range(1, 5):
        first.step(MODEL, step)
    state = first.state_dict()
    assert state["last_probed_step"] == 4 and state["run_id"] == first.run_id

    probe = ScriptedProbe(bpe_tokenizer)
    resumed = FairnessTracker(every_n_steps=2, probe=probe, history_path=history)
    resumed.load_state_dict(state)
    assert not resumed.start(MODEL, step=4).probed  # step 4 was probed before the checkpoint
    assert resumed.step(MODEL, 6).probed and probe.calls == 1
    starts = events(history, "run_start")
    assert [(s["run_id"], s["resumed"], s["step"]) for s in starts] == [(first.run_id, False, 0), (first.run_id, True, 4)]


# -- (b) the stop vote ----------------------------------------------------------------------------


def test_a_growing_gap_stops_with_gap_grew_naming_the_step(bpe_tokenizer, tmp_path):
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedProbe(bpe_tokenizer, gaps=[0.01, 0.02, 0.03, 0.04, 0.05]),
        early_stopping=point_rule(patience=2),
        history_path=history,
    )
    tracker.update_loss({"val_loss": 2.0})
    outcomes = [tracker.start(MODEL)]
    for step in range(1, 5):
        tracker.update_loss({"val_loss": 2.0})
        outcomes.append(tracker.step(MODEL, step))
        if outcomes[-1].should_stop:
            break
    assert [o.should_stop for o in outcomes] == [False, False, True]
    assert tracker.stopped_reason is StopReason.GAP_GREW
    assert "stopping at step 2" in outcomes[-1].message and "best at step 0" in outcomes[-1].message
    assert tracker.stop_message == outcomes[-1].message
    (stop,) = events(history, "stop")
    assert (stop["step"], stop["reason"], stop["monitor"], stop["best_step"]) == (2, "gap_grew", "jsdp/gap", 0)
    assert stop["best_value"] == pytest.approx(0.01) and stop["message"] == outcomes[-1].message
    assert [line["stopping/wait"] for line in events(history, "probe")] == [0, 1, 2]


def test_a_growing_gap_without_a_loss_stops_with_gap_grew_no_loss(bpe_tokenizer):
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedProbe(bpe_tokenizer, gaps=[0.01, 0.02, 0.03]),
        early_stopping=point_rule(patience=2),
    )
    tracker.start(MODEL)
    assert not tracker.step(MODEL, 1).should_stop
    outcome = tracker.step(MODEL, 2)
    assert outcome.should_stop and tracker.stopped_reason is StopReason.GAP_GREW_NO_LOSS
    assert "stopping at step 2" in outcome.message


def test_a_gap_that_does_not_grow_never_stops(bpe_tokenizer, tmp_path):
    history = tmp_path / "h.jsonl"
    # Falls, then wobbles within min_delta of its best: never worse for 2 probes in a row.
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedProbe(bpe_tokenizer, gaps=[0.05, 0.04, 0.03, 0.0305, 0.02, 0.0201]),
        early_stopping=point_rule(patience=2, min_delta=0.001),
        history_path=history,
    )
    tracker.update_loss({"val_loss": 2.0})
    outcomes = [tracker.start(MODEL)] + [tracker.step(MODEL, step) for step in range(1, 8)]
    assert not any(o.should_stop for o in outcomes) and all(o.probed for o in outcomes)
    assert tracker.stopped_reason is None and tracker.stop_message is None
    assert events(history, "stop") == []
    assert tracker.early_stopping.best == pytest.approx(0.02) and tracker.early_stopping.best_step == 4


# -- (c) intervals ----------------------------------------------------------------------------------


def test_confidence_intervals_in_the_metrics_and_the_history_line(probe, tmp_path):
    history = tmp_path / "h.jsonl"
    logged = []
    tracker = FairnessTracker(
        every_n_steps=1, probe=probe, history_path=history, log=lambda metrics, step: logged.append((step, metrics))
    )
    assert tracker.metric_keys() == set(probe.metric_keys)  # known before any probe
    metrics = tracker.start(MODEL).metrics
    assert set(metrics) == set(probe.metric_keys)
    (line,) = events(history, "probe")
    for name in ("ar", "jsdp"):
        low, gap, high = (metrics[f"{name}/gap_ci_low"], metrics[f"{name}/gap"], metrics[f"{name}/gap_ci_high"])
        assert all(math.isfinite(v) for v in (low, gap, high))
        assert low < high and low <= gap <= high, (name, low, gap, high)
        assert (line[f"{name}/gap_ci_low"], line[f"{name}/gap_ci_high"]) == pytest.approx((low, high))
    # The per-sentence values behind the gap (for the bootstrap stop test and offline rules).
    assert set(line["units"]) == {"jsdp/gap"} and line["units"]["jsdp/gap"]
    assert len(line["by_seed"]["jsdp/gap"]) == 1  # one option-order seed
    # The loggers get the headline metrics, not the intervals.
    ((step, sent),) = logged
    assert step == 0 and sent["fairness/jsdp/gap"] == pytest.approx(metrics["jsdp/gap"])
    assert not [key for key in sent if "_ci_" in key]


# -- (d) the history ---------------------------------------------------------------------------------


def test_history_lines_run_start_probes_with_loss_and_a_stop(bpe_tokenizer, tmp_path):
    history = tmp_path / "runs" / "h.jsonl"  # the folder is made
    tracker = FairnessTracker(
        every_n_steps=2,
        probe=ScriptedProbe(bpe_tokenizer, gaps=[0.01, 0.05, 0.06]),
        early_stopping=point_rule(patience=2),
        history_path=history,
        loss_key="eval_loss",
    )
    tracker.start(MODEL)
    for step in range(1, 5):
        tracker.update_loss({"eval_loss": torch.tensor(3.0 - 0.1 * step), "other": 1.0})
        tracker.step(MODEL, step)
    records = lines(history)
    assert [r["event"] for r in records] == ["run_start", "probe", "probe", "probe", "stop"]
    assert all(r["run_id"] == tracker.run_id for r in records)
    start = records[0]
    assert (start["step"], start["framework"], start["every_n_steps"], start["monitor"], start["resumed"]) == (
        0,
        "custom",
        2,
        "jsdp/gap",
        False,
    )
    assert start["num_prompts"] == len(tracker.probe)
    probes = records[1:4]
    assert [p["step"] for p in probes] == [0, 2, 4]
    assert [p["eval_loss"] for p in probes] == [None, pytest.approx(2.8), pytest.approx(2.6)]
    assert [p["jsdp/gap"] for p in probes] == pytest.approx([0.01, 0.05, 0.06])
    for p in probes:
        assert p["units"]["jsdp/gap"] and p["prefix_sharing"] == "off" and p["probe_seconds"] >= 0
        assert {"ar/male", "jsdp/female", "acc/not_specified", "mwu_p/jsdp", "jsdp/gap_sudden", "stopping/best"} <= set(p)
    assert records[-1]["step"] == 4 and records[-1]["reason"] == "gap_grew"


def test_history_is_appended_and_flushed_during_the_run(probe, tmp_path):
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(every_n_steps=2, probe=probe, history_path=history)
    tracker.start(MODEL)
    assert [r["event"] for r in lines(history)] == ["run_start", "probe"]  # on disk before the next step
    tracker.step(MODEL, 1)
    assert len(lines(history)) == 2
    tracker.step(MODEL, 2)
    assert [(r["event"], r.get("step")) for r in lines(history)] == [("run_start", 0), ("probe", 0), ("probe", 2)]


def test_two_runs_in_one_file_are_kept_apart(bpe_tokenizer, tmp_path):
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(every_n_steps=1, probe=ScriptedProbe(bpe_tokenizer), history_path=history)
    tracker.start(MODEL)
    tracker.step(MODEL, 1)
    first = tracker.run_id
    tracker.reset()  # a second fit with the same callback
    tracker.start(MODEL)
    second = tracker.run_id
    assert first and second and first != second
    runs = history_runs(read_history(history))
    assert [(r.run_id, r.num_probes, r.first_step, r.last_step) for r in runs] == [(first, 2, 0, 1), (second, 1, 0, 0)]
    assert [r["event"] for r in select_run(read_history(history), second)] == ["run_start", "probe"]


# -- (e) errors -------------------------------------------------------------------------------------


def test_an_unknown_monitor_key_fails_before_any_probe(probe, tmp_path):
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(
        every_n_steps=1, probe=probe, history_path=history, early_stopping=FairnessEarlyStopping(monitor="jsdp/gapp")
    )
    with pytest.raises(ValueError, match=r"monitor='jsdp/gapp'.*jsdp/gap"):
        tracker.start(MODEL)
    assert probe.calls == 0 and not history.exists()
    with pytest.raises(ValueError, match="every_n_steps"):
        FairnessTracker(every_n_steps=0, probe=probe)
    with pytest.raises(ValueError, match="on_error"):
        FairnessTracker(probe=probe, on_error="ignore")


def test_a_failing_probe_is_logged_and_training_goes_on(bpe_tokenizer, tmp_path, caplog):
    history = tmp_path / "h.jsonl"
    probe = ScriptedProbe(bpe_tokenizer, fail_on=(1,))
    tracker = FairnessTracker(every_n_steps=1, probe=probe, history_path=history)
    first = tracker.start(MODEL).metrics
    with caplog.at_level("ERROR", logger="fairness_callback"):
        failed = tracker.step(MODEL, 1)
    assert failed.probed and failed.failed and failed.metrics is None and not failed.should_stop
    assert failed.failures == {None: {0: "RuntimeError: scripted probe failure (run 1)"}}
    assert "fairness probe at step 1 failed; training goes on" in caplog.text
    assert "scripted probe failure (run 1)" in caplog.text  # the traceback is logged
    assert tracker.last_metrics is first  # the failed probe changes nothing
    after = tracker.step(MODEL, 2)
    assert after.probed and not after.failed and after.metrics is not None and probe.calls == 3
    (line,) = events(history, "probe_failed")
    assert (line["step"], line["probe"], line["error_type"], line["ranks"]) == (
        1,
        None,
        "RuntimeError",
        {"0": "RuntimeError: scripted probe failure (run 1)"},
    )
    assert line["message"] == "scripted probe failure (run 1)" and line["run_id"] == tracker.run_id
    assert [r["step"] for r in events(history, "probe")] == [0, 2]


def test_on_error_raise_raises_after_writing_the_probe_failed_line(bpe_tokenizer, tmp_path):
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(
        every_n_steps=1, probe=ScriptedProbe(bpe_tokenizer, fail_on=(1,)), history_path=history, on_error="raise"
    )
    tracker.start(MODEL)
    with pytest.raises(RuntimeError, match=r"scripted probe failure \(run 1\)"):
        tracker.step(MODEL, 1)
    assert [(r["event"], r.get("step")) for r in lines(history)] == [("run_start", 0), ("probe", 0), ("probe_failed", 1)]


# -- (f) the lifecycle: start opens once, the adapters' arguments, the loss key --------------------
def test_start_opens_the_run_once_and_probes_at_start_once(probe, tmp_path):
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(every_n_steps=5, probe=probe, history_path=history)
    assert not tracker.start(MODEL, probe=False).probed  # opened, no probe
    assert [line["event"] for line in lines(history)] == ["run_start"]
    assert tracker.start(MODEL).probed  # the probe at start, once the model is ready
    assert not tracker.start(MODEL).probed  # step 0 was probed: nothing again, no second run-start line
    assert [line["event"] for line in lines(history)] == ["run_start", "probe"]
    tracker.reset()
    tracker.start(MODEL)
    assert len({line["run_id"] for line in lines(history)}) == 2  # a new run after reset


def test_the_adapters_arguments_give_the_probe_and_the_default_history(bpe_tokenizer, tmp_path):
    tracker = FairnessTracker(every_n_steps=5)
    with pytest.raises(ValueError, match="needs a probe or a tokenizer"):
        tracker.start(MODEL)
    default = tmp_path / "out" / "fairness_history.jsonl"
    tracker.start(MODEL, probe=False, tokenizer=bpe_tokenizer, default_history_path=default)
    assert isinstance(tracker.probe, FairnessProbe) and tracker.history_path == default and default.is_file()
    mine = tmp_path / "mine.jsonl"
    given = FairnessTracker(every_n_steps=5, tokenizer=bpe_tokenizer, history_path=mine)
    given.start(MODEL, probe=False, default_history_path=default)
    assert given.history_path == mine and mine.is_file()  # the user's path wins


def test_the_rule_reads_the_runs_loss_key_unless_it_names_its_own(probe):
    rule = FairnessEarlyStopping(patience=1)
    tracker = FairnessTracker(every_n_steps=5, probe=probe, early_stopping=rule, loss_key="eval_loss")
    tracker.start(MODEL, probe=False)
    assert rule.loss_key == "eval_loss"
    tracker.update_loss({"eval_loss": torch.tensor(0.5), "val_loss": 9.0})
    assert tracker.latest_loss == 0.5 and rule.latest_loss == 0.5
    own = FairnessEarlyStopping(patience=1, loss_key="my_loss")
    tracker = FairnessTracker(every_n_steps=5, probe=probe, early_stopping=own, loss_key="eval_loss")
    tracker.start(MODEL, probe=False)
    tracker.update_loss({"eval_loss": 0.5, "my_loss": 0.25})
    assert own.loss_key == "my_loss" and tracker.latest_loss == 0.25 and own.latest_loss == 0.25
