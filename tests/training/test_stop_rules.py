"""Stop rules as a type (issue #27): the protocol, the guards as parts, the registry, the self-starting charts.

The point rule's own behaviour is tested in test_stopping.py; here: what any rule gets (a rule of
one's own in the tracker and the replay, its own reasons), and the charts' statistics: scale
free, calibrated on independent and on correlated noise, and the decisions they say they make.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from test_engine import MODEL, ScriptedProbe, events

from fairness_callback import FairnessTracker, SelfStartingCusum, SelfStartingEwma, StopDecision, StopReason, StopRule
from fairness_callback.demo.run import DemoConfig
from fairness_callback.offline.rule_replay import replay_rule
from fairness_callback.training.stopping import (
    FairnessEarlyStopping,
    HeldOutLoss,
    MinAccuracy,
    RebaseOnLossDrop,
    SelfStartingBaseline,
    SelfStartingRankCusum,
    SequentialRankBaseline,
    Warmup,
    make_stop_rule,
    parse_stop_rule,
    register_stop_rule,
    stop_rule_names,
)


def feed(rule, gaps, loss=1.0, every=50):
    """Probes at 0, every, 2 every ...; the same held-out loss before each; the decisions up to a stop."""
    decisions = []
    for i, gap in enumerate(gaps):
        if loss is not None:
            rule.update_loss(loss)
        decisions.append(rule.step(i * every, {"jsdp/gap": gap}))
        if decisions[-1].should_stop:
            break
    return decisions


def stop_index(rule, gaps, **kwargs):
    decisions = feed(rule, gaps, **kwargs)
    return len(decisions) - 1 if decisions[-1].should_stop else None


def noise(seed: int, n: int, sd: float = 0.01, level: float = 0.002, rho: float = 0.0) -> list[float]:
    """An AR(1) series around ``level`` with marginal standard deviation ``sd`` and lag-1 correlation ``rho``."""
    rng = random.Random(seed)
    values, e = [], rng.gauss(0, sd)
    for _ in range(n):
        values.append(level + e)
        e = rho * e + math.sqrt(1 - rho * rho) * rng.gauss(0, sd)
    return values


# -- the type ---------------------------------------------------------------------------------------


def test_every_registered_rule_is_a_stop_rule_and_builds_by_name():
    assert {"best", "cusum", "ewma"} <= set(stop_rule_names())
    for name in stop_rule_names():
        rule = make_stop_rule(name)
        assert isinstance(rule, StopRule) and type(rule).name == name
    assert isinstance(parse_stop_rule("patience=2"), FairnessEarlyStopping)  # no rule=: the default rule
    cusum = parse_stop_rule("rule=cusum,threshold=5,allowance=0.25,min_probes=3,autocorrelation=none", "gender/jsdp/gap")
    assert (cusum.threshold, cusum.allowance, cusum.min_probes, cusum.autocorrelation, cusum.monitor) == (
        5.0,
        0.25,
        3,
        None,
        "gender/jsdp/gap",
    )
    assert parse_stop_rule("rule=ewma,smoothing=0.2,autocorrelation=0").baseline.autocorrelation == 0.0


def test_reasons_are_open_with_unique_priorities():
    mine = StopReason.define("test_gap_doubled", 7, "a rule of a test")
    assert StopReason.define("test_gap_doubled", 7) is mine and StopReason.of("test_gap_doubled") is mine
    assert StopReason.from_priority(7) is mine and StopReason.combine([StopReason.GAP_GREW_NO_LOSS, mine]) is mine
    with pytest.raises(ValueError, match="its priority is taken by 'gap_grew'"):
        StopReason.define("another", 1)
    with pytest.raises(ValueError, match="its name is taken"):
        StopReason.define("gap_grew", 9)
    with pytest.raises(ValueError, match="unknown StopReason 'nope'"):
        StopReason.of("nope")


class GapDoubled:
    """A rule of one's own, not built on GapRule: stop when the gap is twice its first value."""

    reason = StopReason.define("test_gap_doubled", 7, "a rule of a test")

    def __init__(self, monitor: str = "jsdp/gap") -> None:
        self.monitor, self.loss_key = monitor, None
        self.reset()

    @property
    def needs_units(self) -> bool:
        return False

    def reset(self) -> None:
        self.first = None

    def check(self, metric_keys, gap_groups=None, loss_key=None) -> None:
        if self.monitor not in set(metric_keys):
            raise ValueError(f"no {self.monitor}")

    def update_loss(self, loss: float) -> None:
        pass

    def step(self, step, metrics, units=None) -> StopDecision:
        value = metrics[self.monitor]
        if self.first is None:
            self.first = value
        if value >= 2 * self.first:
            return StopDecision(True, self.reason, f"stopping at step {step}: doubled", value, self.first, 0)
        return StopDecision(False, StopReason.NOT_STOPPED, "", value, self.first, 0)

    def state_dict(self) -> dict:
        return {"first": self.first}

    def load_state_dict(self, state) -> None:
        self.first = state["first"]


def test_a_rule_of_ones_own_works_in_the_tracker_and_the_replay(bpe_tokenizer, tmp_path):
    register_stop_rule("test_doubled")(GapDoubled)
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedProbe(bpe_tokenizer, gaps=[0.01, 0.015, 0.02, 0.03]),
        early_stopping=GapDoubled(),
        history_path=history,
    )
    outcomes = [tracker.start(MODEL)] + [tracker.step(MODEL, step) for step in (1, 2)]
    assert [o.should_stop for o in outcomes] == [False, False, True]
    assert tracker.stopped_reason is GapDoubled.reason
    (stop,) = events(history, "stop")
    assert (stop["reason"], stop["rule"], stop["best_value"]) == ("test_gap_doubled", "test_doubled", 0.01)
    assert events(history, "run_start")[0]["stop_rule"] == "test_doubled"
    probes = events(history, "probe")
    assert replay_rule(probes, "rule=test_doubled").stop_step == 2


# -- the guards -------------------------------------------------------------------------------------


def test_the_guards_each_decide_one_thing():
    assert Warmup(100).skip(99) and Warmup(100).skip(100) is None
    with pytest.raises(ValueError, match="warmup_steps"):
        Warmup(-1)
    accuracy = MinAccuracy(0.5, "bbq/jsdp/gap")
    accuracy.check({"bbq/acc/inconsistent", "bbq/acc/consistent"}, ("inconsistent", "consistent"), "Rule")
    assert accuracy.keys() == ("bbq/acc/inconsistent", "bbq/acc/consistent")
    assert "below min_accuracy=0.5" in accuracy.skip({"bbq/acc/inconsistent": 0.4, "bbq/acc/consistent": 0.9})
    with pytest.raises(ValueError, match=r"Rule\(min_accuracy=0.5\): monitor 'jsdp/gap' has no acc/female"):
        MinAccuracy(0.5).check({"jsdp/gap", "acc/male"}, None, "Rule")
    loss = HeldOutLoss("val_loss", tolerance=0.1)
    loss.update(1.0)
    loss.update(float("nan"))  # ignored
    loss.update(1.05)
    assert (loss.latest, loss.best) == (1.05, 1.0) and loss.veto("grew") is None
    loss.update(1.2)
    assert loss.veto("grew") == "grew, but val_loss 1.2 not within 10% of best 1"
    assert HeldOutLoss(required=True).veto("grew") == "grew, but no held-out loss is known and require_loss=True"
    rebase = RebaseOnLossDrop(0.5)
    assert not rebase.stale(1.0, 0.7, True) and rebase.stale(1.0, 0.6, True)
    assert rebase.stale(None, 0.6, True) and not rebase.stale(1.0, 0.1, False) and not RebaseOnLossDrop(None).stale(9, 1, True)


# -- the self-starting baseline -----------------------------------------------------------------------


def test_standardised_probes_are_standard_normal_whatever_the_scale():
    """Hawkins' Q statistic: against n earlier independent normal values, u is N(0, 1) exactly."""
    us = []
    for seed in range(400):
        values = noise(seed, 8, sd=0.02)
        baseline = SelfStartingBaseline(autocorrelation=0.0)
        for value in values[:-1]:
            baseline.accept(value)
        us.append(baseline.standardise(values[-1]))
        scaled = SelfStartingBaseline(autocorrelation=0.0)
        for value in values[:-1]:
            scaled.accept(1000 * value - 3)
        assert scaled.standardise(1000 * values[-1] - 3) == pytest.approx(us[-1], abs=1e-9)
    assert abs(statistics.fmean(us)) < 0.15 and 0.85 < statistics.stdev(us) < 1.15


def test_the_correlation_estimate_sees_correlated_probes():
    """The estimate is the lower 95% bound of the bias-corrected lag-1 correlation: it sees a strong
    correlation in 15 probes, and is 0 for most independent ones (a correction there would only cost power)."""
    correlated, independent = [], []
    for seed in range(100):
        for rho, found in ((0.7, correlated), (0.0, independent)):
            baseline = SelfStartingBaseline()
            for value in noise(seed, 15, rho=rho):
                baseline.accept(value)
            found.append(baseline.rho())
    assert statistics.median(correlated) > 0.1 and statistics.median(independent) == 0.0
    assert sum(rho > 0 for rho in independent) <= 20 and sum(rho > 0 for rho in correlated) >= 60
    assert SelfStartingBaseline(autocorrelation=0.3).rho() == 0.3


# -- the CUSUM --------------------------------------------------------------------------------------


def test_the_cusum_decides_in_the_runs_own_units():
    """The same series at any scale stops at the same probe: the threshold is in standard deviations."""
    series = noise(3, 10) + [0.06, 0.07, 0.08, 0.09]
    stops = {scale: stop_index(SelfStartingCusum(rebase_loss_drop=None), [scale * v for v in series]) for scale in (0.01, 1, 100)}
    assert stops[1] is not None and 10 <= stops[1] <= 12 and len(set(stops.values())) == 1
    decision = feed(SelfStartingCusum(rebase_loss_drop=None), series, loss=0.5)[-1]
    assert decision.should_stop and decision.reason is StopReason.GAP_GREW and decision.statistic > 5
    assert "jsdp/gap rose above its level since step 0: CUSUM" in decision.message and "sd (threshold 5)" in decision.message
    assert "over 10 probes" in decision.message and "val_loss" not in decision.message  # loss_key unset: "held-out loss"
    assert decision.message.endswith("held-out loss 0.5 within 2% of best 0.5")


def test_the_cusum_false_alarm_rate_on_in_control_runs():
    """Balanced runs of 20 probes (16 charted): independent noise stays near the theory's rate (two-sided,
    h=5, k=0.5: about one alarm in 230 probes, so about 7% of such runs); correlated noise raises it, and
    the correction takes part of that back (why it is there)."""

    def alarms(rho: float, autocorrelation: float | None) -> int:
        return sum(
            stop_index(SelfStartingCusum(rebase_loss_drop=None, autocorrelation=autocorrelation), noise(seed, 20, rho=rho))
            is not None
            for seed in range(200)
        )

    assert alarms(0.0, None) <= 20  # <= 10% of runs
    assert alarms(0.6, None) < alarms(0.6, 0.0)


def test_the_cusum_detects_a_shift_of_three_sds_within_a_few_probes():
    delays = []
    for seed in range(50):
        gaps = noise(seed, 10) + [g + 0.03 for g in noise(seed + 1000, 10)]
        stopped = stop_index(SelfStartingCusum(rebase_loss_drop=None), gaps)
        if stopped is not None and stopped >= 10:
            delays.append(stopped - 10)
    assert len(delays) >= 45 and statistics.median(delays) <= 3


def test_the_cusum_watches_both_directions_away_from_zero_only():
    drop = [0.0, 0.004, -0.003, 0.001, 0.002, -0.002, -0.05, -0.06, -0.07, -0.08]
    assert stop_index(SelfStartingCusum(rebase_loss_drop=None), drop) is not None
    assert stop_index(SelfStartingCusum(rebase_loss_drop=None, use_abs=False), drop) is None
    # A gap that settles from +0.05 toward zero is a fairer model: the chart moves, no stop, the level follows.
    fairer = [0.05, 0.054, 0.047, 0.051, 0.049, 0.052, 0.01, 0.008, 0.012, 0.009, 0.011, 0.01]
    decisions = feed(SelfStartingCusum(rebase_loss_drop=None), fairer)
    assert not decisions[-1].should_stop and any("moved toward zero" in d.message for d in decisions)
    assert decisions[-1].best_step == 350 and decisions[-1].best == pytest.approx(0.008)  # the fairest probe


def test_the_cusum_baseline_restarts_when_the_loss_falls_and_the_loss_can_hold_a_stop():
    rule = SelfStartingCusum(rebase_loss_drop=0.5)
    losses = [3.0, 2.5, 1.0, 0.9, 0.88, 0.87, 0.86, 0.85, 0.85, 0.85, 0.85]
    gaps = [0.0, 0.2, 0.01, 0.012, 0.008, 0.011, 0.009, 0.01, 0.05, 0.06, 0.07]
    decisions = []
    for i, (loss, gap) in enumerate(zip(losses, gaps)):
        rule.update_loss(loss)
        decisions.append(rule.step(i * 50, {"jsdp/gap": gap}))
    assert decisions[2].message == (
        "jsdp/gap +0.01 starts a new baseline: held-out loss fell from 3 to 1 since the baseline at step 0 (rebase_loss_drop=0.5)"
    )
    assert any(d.should_stop for d in decisions[8:]) and "since step 100" in next(d for d in decisions if d.should_stop).message
    held = SelfStartingCusum(rebase_loss_drop=None, loss_tolerance=0.02)
    series = noise(3, 10) + [0.06, 0.07, 0.08]
    decisions = feed(held, series[:10], loss=1.0) + feed(held, series[10:], loss=1.5)
    assert not any(d.should_stop for d in decisions) and "not within 2% of best 1" in decisions[-1].message
    held.update_loss(1.01)
    assert held.step(1000, {"jsdp/gap": 0.09}).should_stop  # the chart kept its sum through the veto


def test_a_resumed_chart_decides_as_the_uninterrupted_one():
    series = noise(5, 10) + [0.03, 0.05, 0.06, 0.07, 0.08]
    whole = SelfStartingCusum(rebase_loss_drop=None)
    expected = [d.message for d in feed(whole, series)]
    first = SelfStartingCusum(rebase_loss_drop=None)
    messages = [d.message for d in feed(first, series[:11])]
    resumed = SelfStartingCusum(rebase_loss_drop=None)
    resumed.load_state_dict(first.state_dict())
    assert resumed.state_dict() == first.state_dict()
    for i, gap in enumerate(series[11:], start=11):
        resumed.update_loss(1.0)
        messages.append(resumed.step(i * 50, {"jsdp/gap": gap}).message)
        if resumed.stopped_step is not None:
            break
    assert messages == expected


def test_the_ewma_chart_shares_the_baseline_and_detects_a_shift():
    series = noise(3, 10) + [0.06, 0.07, 0.08, 0.09]
    decisions = feed(SelfStartingEwma(rebase_loss_drop=None), series)
    assert decisions[-1].should_stop and "EWMA" in decisions[-1].message
    assert stop_index(SelfStartingEwma(rebase_loss_drop=None), [100 * g for g in series]) == len(decisions) - 1
    with pytest.raises(ValueError, match="smoothing"):
        SelfStartingEwma(smoothing=0)


def test_the_baseline_waits_for_a_model_that_reads_the_task():
    """A model that answers one gender everywhere swings far more than it will once it reads the pronoun:
    the baseline starts at the first probe with accuracy >= ready_accuracy on both groups' prompts, and a
    drift that costs accuracy later is still charted (unlike min_accuracy, no probe is skipped after it)."""
    phases = [(0.06, 1.0, 0.0), (-0.08, 0.0, 1.0), (0.05, 1.0, 0.1)]
    learned = [(g, 1.0, 1.0) for g in noise(7, 6)]
    drift = [(0.08, 1.0, 0.4), (0.09, 1.0, 0.3), (0.1, 1.0, 0.2), (0.11, 1.0, 0.2)]
    rule = SelfStartingCusum(rebase_loss_drop=None)
    decisions = []
    for i, (gap, male, female) in enumerate(phases + learned + drift):
        rule.update_loss(1.0)
        decisions.append(rule.step(i * 50, {"jsdp/gap": gap, "acc/male": male, "acc/female": female}))
        if decisions[-1].should_stop:
            break
    assert decisions[0].message.startswith("jsdp/gap +0.06: no baseline yet, its model does not read the task (accuracy 0.00")
    assert "ready_accuracy=0.5" in decisions[2].message and "baseline 1/4 probes since step 150" in decisions[3].message
    assert decisions[-1].should_stop and len(decisions) - 1 < len(phases + learned + drift)
    assert "since step 150" in decisions[-1].message
    # Without accuracies (a custom probe) the baseline starts at once; ready_accuracy=0 turns the wait off.
    assert "baseline 1/4" in SelfStartingCusum().step(0, {"jsdp/gap": 0.06}).message
    assert (
        "baseline 1/4" in SelfStartingCusum(ready_accuracy=0).step(0, {"jsdp/gap": 0.06, "acc/male": 0, "acc/female": 1}).message
    )


def test_a_shift_smaller_than_min_shift_sds_joins_the_baseline():
    """A balanced demo run (seed 2, probes from step 350): four calm probes underestimate the spread, the
    next ones swing more and the downward CUSUM passes 5; their mean is within one sd of the level, so
    they join the baseline instead of stopping (min_shift=0 stops: a false alarm)."""
    gaps = [0.0114, -0.0007, 0.0011, 0.0075, -0.0082, 0.009, -0.0058, -0.0284, 0.0064, -0.0021, -0.0171, -0.0038, -0.0085]
    assert stop_index(SelfStartingCusum(rebase_loss_drop=None, min_shift=0), gaps) is not None
    decisions = feed(SelfStartingCusum(rebase_loss_drop=None), gaps)
    assert not any(d.should_stop for d in decisions)
    assert any("within min_shift=1 sd" in d.message and "the baseline takes it" in d.message for d in decisions)
    with pytest.raises(ValueError, match="min_shift"):
        SelfStartingCusum(min_shift=-1)
    with pytest.raises(ValueError, match="ready_accuracy"):
        SelfStartingCusum(ready_accuracy=2)


def test_the_rank_cusum_ignores_one_wild_probe_and_detects_a_run_of_high_ones():
    """On sequential ranks one probe far out scores as the largest of the baseline, never as many
    standard deviations: the normal-score CUSUM stops on it, the rank CUSUM does not; a sustained rise
    stops both, at any scale."""
    calm = noise(3, 10)
    spike = [*calm, 0.2, *noise(4, 6)]
    assert stop_index(SelfStartingCusum(rebase_loss_drop=None), spike) == 10
    assert stop_index(SelfStartingRankCusum(rebase_loss_drop=None), spike) is None
    rise = [*calm, 0.06, 0.07, 0.08, 0.09, 0.1]
    stops = {
        scale: stop_index(SelfStartingRankCusum(rebase_loss_drop=None), [scale * g for g in rise]) for scale in (0.01, 1, 100)
    }
    assert stops[1] is not None and 11 <= stops[1] <= 14 and len(set(stops.values())) == 1
    decision = feed(SelfStartingRankCusum(rebase_loss_drop=None), rise)[-1]
    assert decision.should_stop and "CUSUM" in decision.message and "(threshold 3)" in decision.message
    assert repr(SelfStartingRankCusum()).startswith("SelfStartingRankCusum(threshold=3.0")


def test_sequential_rank_scores_are_bounded_by_the_baseline_size():
    baseline = SequentialRankBaseline(autocorrelation=0)
    baseline.accept(0.0)
    for v in (1.0, 2.0, 3.0):
        baseline.accept(v)
    assert baseline.standardise(100.0) == pytest.approx(statistics.NormalDist().inv_cdf(4.5 / 5))
    assert baseline.standardise(-100.0) == pytest.approx(-baseline.standardise(100.0))
    assert baseline.standardise(1.5) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": 0}, "threshold"),
        ({"allowance": -1}, "allowance"),
        ({"min_probes": 1}, "min_probes"),
        ({"autocorrelation": 1.0}, "autocorrelation"),
    ],
)
def test_bad_cusum_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelfStartingCusum(**kwargs)


def test_the_cusum_in_the_tracker_writes_its_statistic(bpe_tokenizer, tmp_path):
    history = tmp_path / "h.jsonl"
    gaps = noise(3, 8) + [0.06, 0.07, 0.08, 0.09]
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedProbe(bpe_tokenizer, gaps=gaps),
        early_stopping=SelfStartingCusum(rebase_loss_drop=None),
        history_path=history,
    )
    tracker.update_loss({"val_loss": 1.0})
    outcome = tracker.start(MODEL)
    for step in range(1, len(gaps)):
        outcome = tracker.step(MODEL, step)
        if outcome.should_stop:
            break
    assert outcome.should_stop and "CUSUM" in outcome.message and "val_loss 1 within 2% of best 1" in outcome.message
    probes = events(history, "probe")
    assert all("stopping/statistic" in p for p in probes) and probes[-1]["stopping/statistic"] > 5
    (stop,) = events(history, "stop")
    assert stop["rule"] == "cusum" and stop["statistic"] > 5 and stop["best_step"] is not None
    assert replay_rule(probes, "rule=cusum,rebase_loss_drop=none").stop_step == stop["step"]  # replay agrees


def test_the_demo_builds_the_rule_it_is_given():
    assert isinstance(DemoConfig(stop_rule={"rule": "cusum", "threshold": 5}).early_stopping_policy(), SelfStartingCusum)
    default = DemoConfig().early_stopping_policy()
    assert isinstance(default, FairnessEarlyStopping) and default.patience == 3


@pytest.mark.parametrize("name", ["best", "cusum", "rank-cusum", "ewma"])
def test_every_rule_can_be_named_in_a_yaml_config(name):
    """LightningCLI reads ``early_stopping: {class_path: ..., init_args: ...}`` through jsonargparse, which
    accepts a class only if its methods match the StopRule protocol's signatures."""
    jsonargparse = pytest.importorskip("jsonargparse")
    cls = make_stop_rule(name).__class__
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--early_stopping", type=StopRule | None)
    config = parser.parse_args(
        ["--early_stopping", f'{{"class_path": "{cls.__module__}.{cls.__name__}", "init_args": {{"monitor": "ar/gap"}}}}']
    )
    rule = parser.instantiate_classes(config).early_stopping
    assert isinstance(rule, cls) and rule.monitor == "ar/gap"
