"""The fairness early-stopping rule, probe by probe, without any training framework."""

import logging
import math

import pytest

from fairness_callback import FairnessEarlyStopping, StopReason
from support import point_rule


def test_the_defaults_are_those_chosen_in_docs_stopping():
    rule = FairnessEarlyStopping()
    assert (rule.patience, rule.min_delta, rule.rebase_loss_drop, rule.test, rule.warmup_steps, rule.min_accuracy) == (
        3,
        0.015,
        0.5,
        "point",
        0,
        0.0,
    )


def feed(policy, gaps, start=0, every=100, p=0.001):
    """Probe steps start, start+every, ...; returns the step that stopped (or None) and the decisions."""
    decisions = []
    for i, gap in enumerate(gaps):
        step = start + i * every
        decision = policy.step(step, {"jsdp/gap": gap, "mwu_p/jsdp": p})
        decisions.append(decision)
        if decision.should_stop:
            return step, decisions
    return None, decisions


def test_stops_after_patience_probes_above_best_with_loss_within_tolerance(caplog):
    policy = point_rule(patience=3, loss_key="eval_loss")
    policy.update_loss(2.27)
    policy.update_loss(2.31)
    stopped, decisions = feed(policy, [0.06, 0.041, 0.05, 0.07, 0.083])
    assert stopped == 400
    assert policy.reason is StopReason.GAP_GREW and policy.best_step == 100 and policy.best == 0.041
    assert decisions[-1].message == (
        "stopping at step 400: jsdp/gap 0.083 exceeded best 0.041 + 0 for 3 probes (best at step 100); "
        "eval_loss 2.31 within 2% of best 2.27"
    )


def test_a_probe_back_at_best_resets_the_count():
    policy = point_rule(patience=2)
    policy.update_loss(1.0)
    assert feed(policy, [0.04, 0.05, 0.04, 0.05, 0.06])[0] == 400
    assert policy.wait == 2


def test_min_delta():
    policy = point_rule(patience=1, min_delta=0.01)
    policy.update_loss(1.0)
    assert feed(policy, [0.04, 0.049, 0.045])[0] is None
    assert feed(policy, [0.051], start=300)[0] == 300


def test_use_abs_treats_negative_gaps_as_unfair():
    absolute = point_rule(patience=1)
    signed = point_rule(patience=1, use_abs=False)
    for policy in (absolute, signed):
        policy.update_loss(1.0)
    assert feed(absolute, [0.01, -0.05])[0] == 100
    assert feed(signed, [0.01, -0.05])[0] is None


def test_warmup_steps_ignore_early_probes():
    policy = point_rule(patience=1, warmup_steps=300)
    policy.update_loss(1.0)
    # the early phase where the model answers one option everywhere: the gap jumps, then settles
    stopped, _ = feed(policy, [0.0, 0.3, 0.0, 0.02, 0.01, 0.03])
    assert policy.best_step == 400 and stopped == 500


def test_loss_out_of_tolerance_blocks_the_stop():
    policy = point_rule(patience=1, loss_tolerance=0.02, loss_key="val_loss")
    policy.update_loss(2.0)
    policy.update_loss(2.1)
    stopped, decisions = feed(policy, [0.01, 0.02])
    assert stopped is None
    assert "val_loss 2.1 not within 2% of best 2" in decisions[-1].message
    policy.update_loss(2.03)
    assert feed(policy, [0.03], start=200)[0] == 200


def test_no_loss_decides_on_gap_and_says_so_once(caplog):
    policy = point_rule(patience=1, loss_key="eval_loss")
    with caplog.at_level(logging.WARNING, logger="fairness_callback.training.stopping"):
        assert feed(policy, [0.01, 0.02])[0] == 100
        assert policy.reason is StopReason.GAP_GREW_NO_LOSS
        feed(policy, [0.03], start=200)
    assert sum("no eval_loss has been logged" in r.message for r in caplog.records) == 1


def test_require_loss_never_stops_without_one():
    policy = point_rule(patience=1, require_loss=True)
    assert feed(policy, [0.01, 0.02, 0.03])[0] is None


def test_stop_on_significant_only():
    policy = point_rule(patience=2, stop_on_significant_only=True, alpha=0.01)
    policy.update_loss(1.0)
    assert feed(policy, [0.01, 0.02, 0.03], p=0.2)[0] is None
    assert policy.wait == 0
    assert feed(policy, [0.04, 0.05], start=300, p=0.001)[0] == 400
    assert point_rule(monitor="pro/ar/gap").p_value_key == "pro/mwu_p/ar"
    with pytest.raises(ValueError, match="monitor"):
        _ = point_rule(monitor="jsdp/male").p_value_key


def test_nan_probe_is_ignored():
    policy = point_rule(patience=1)
    policy.update_loss(1.0)
    stopped, decisions = feed(policy, [0.01, math.nan, 0.005])
    assert stopped is None and "ignored" in decisions[1].message and policy.best == 0.005


def feed_with_losses(policy, probes, every=100):
    """``probes``: (loss or None, gap) per probe; the loss is the latest evaluation before the probe."""
    for i, (loss, gap) in enumerate(probes):
        if loss is not None:
            policy.update_loss(loss)
        decision = policy.step(i * every, {"jsdp/gap": gap})
        if decision.should_stop:
            return i * every, decision
    return None, decision


# The first probes of a run trained from scratch: the untrained model answers one option
# everywhere (gap about 0 at step 0), then the gap jumps while the held-out loss falls fast.
UNTRAINED_THEN_LEARNED = [(None, 0.0003), (3.4, 0.05), (0.98, 0.12), (0.65, 0.05), (0.59, 0.036), (0.58, 0.008)]


def test_rebase_loss_drop_lets_the_best_of_an_untrained_model_go():
    """Without it, the untrained model's gap of about 0 is the best and the jumps of the next probes
    stop the run; with it, each of those bests is stale once the loss has fallen by more than 10%,
    and the rule starts from the model that reads the pronoun (step 500)."""
    plain = point_rule(patience=3, min_delta=0.01)
    assert feed_with_losses(plain, UNTRAINED_THEN_LEARNED)[0] == 300
    rebased = point_rule(patience=3, min_delta=0.01, rebase_loss_drop=0.1)
    stopped, decision = feed_with_losses(rebased, UNTRAINED_THEN_LEARNED)
    assert stopped is None and rebased.best_step == 500 and rebased.best == 0.008
    # The bias emerges: three probes above best + min_delta, the loss still falling within 10%.
    rebased = point_rule(patience=3, min_delta=0.01, rebase_loss_drop=0.1)
    stopped, decision = feed_with_losses(rebased, UNTRAINED_THEN_LEARNED + [(0.57, 0.06), (0.56, 0.09), (0.55, 0.05)])
    assert stopped == 800 and decision.best_step == 500
    assert "exceeded best 0.008 + 0.01 for 3 probes (best at step 500)" in decision.message


def test_rebase_loss_drop_says_why_the_best_moved_and_survives_a_resume():
    policy = point_rule(patience=3, rebase_loss_drop=0.1)
    policy.update_loss(1.0)
    assert policy.step(0, {"jsdp/gap": 0.001}).best_step == 0
    policy.update_loss(0.95)  # within 10%: the best holds
    assert policy.step(100, {"jsdp/gap": 0.04}).best_step == 0
    restored = point_rule(patience=3, rebase_loss_drop=0.1)
    restored.load_state_dict(policy.state_dict())
    assert restored.loss_at_best == 1.0
    restored.update_loss(0.8)  # 1.0 > 0.8 * 1.1: stale
    decision = restored.step(200, {"jsdp/gap": 0.05})
    assert (decision.best_step, decision.best, decision.wait) == (200, 0.05, 0)
    assert decision.message == (
        "jsdp/gap 0.05 is the new best: held-out loss fell from 1 to 0.8 since the best at step 0 (rebase_loss_drop=0.1)"
    )
    # Without held-out losses it never acts: the rule is the plain one.
    no_loss = point_rule(patience=1, rebase_loss_drop=0.1)
    assert feed(no_loss, [0.001, 0.04])[0] == 100


def test_unknown_monitor_names_the_known_keys():
    with pytest.raises(KeyError, match="'jsdp/gapp' is not a probe metric.*jsdp/gap"):
        point_rule(monitor="jsdp/gapp").step(0, {"jsdp/gap": 0.1})


def test_state_dict_round_trip_continues_the_count():
    policy = point_rule(patience=3)
    policy.update_loss(1.5)
    feed(policy, [0.02, 0.03, 0.04])
    restored = point_rule(patience=3)
    restored.load_state_dict(policy.state_dict())
    assert restored.state_dict() == policy.state_dict()
    assert restored.step(300, {"jsdp/gap": 0.05}).should_stop


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patience": 0}, "patience"),
        ({"min_delta": -1}, "min_delta"),
        ({"loss_tolerance": -0.1}, "loss_tolerance"),
        ({"alpha": 1.5}, "alpha"),
        ({"rebase_loss_drop": -0.1}, "rebase_loss_drop"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        point_rule(**kwargs)


def test_min_accuracy_ignores_probes_before_the_model_reads_the_pronoun():
    policy = point_rule(patience=1, min_accuracy=0.25)
    policy.update_loss(1.0)
    one_option = {"acc/male": 1.0, "acc/female": 0.0}
    reading = {"acc/male": 0.9, "acc/female": 0.6}
    assert not policy.step(0, {"jsdp/gap": 0.0, **reading}).should_stop
    decision = policy.step(100, {"jsdp/gap": 0.3, **one_option})
    assert not decision.should_stop and "below min_accuracy" in decision.message and policy.wait == 0
    assert policy.step(200, {"jsdp/gap": 0.05, **reading}).should_stop
    pro = point_rule(monitor="pro/jsdp/gap", patience=1, min_accuracy=0.5)
    pro.update_loss(1.0)
    pro.step(0, {"pro/jsdp/gap": 0.0, "pro/acc/male": 1.0, "pro/acc/female": 1.0})
    assert not pro.step(1, {"pro/jsdp/gap": 0.2, "pro/acc/male": 1.0, "pro/acc/female": 0.2}).should_stop


def test_decisions_carry_the_numbers_as_values():
    policy = point_rule(patience=2, loss_key="eval_loss", warmup_steps=100)
    policy.update_loss(2.0)
    stopped, decisions = feed(policy, [0.5, -0.041, 0.05, 0.07])
    assert stopped == 300
    warmup, best, worse, stop = decisions
    assert (warmup.value, warmup.best, warmup.best_step, warmup.wait) == (0.5, None, None, 0)  # within warmup: no best yet
    assert (best.value, best.best, best.best_step, best.wait) == (0.041, 0.041, 100, 0)  # |value| (use_abs)
    assert (worse.value, worse.best, worse.best_step, worse.wait) == (0.05, 0.041, 100, 1)
    assert stop.should_stop and stop.reason is StopReason.GAP_GREW
    assert (stop.value, stop.best, stop.best_step, stop.wait) == (0.07, 0.041, 100, 2)
    assert "0.07 exceeded best 0.041" in stop.message  # the message says the same numbers
    signed = point_rule(use_abs=False).step(0, {"jsdp/gap": -0.2})
    assert signed.value == -0.2 and signed.best == -0.2 and signed.best_step == 0


def test_stop_reasons_combine_by_their_documented_priority():
    """Ranks' reasons combine as GAP_GREW_NO_LOSS > GAP_GREW > NOT_STOPPED (the tracker all-reduces the max priority)."""
    assert [r.priority for r in (StopReason.NOT_STOPPED, StopReason.GAP_GREW, StopReason.GAP_GREW_NO_LOSS)] == [0, 1, 2]
    assert all(StopReason.from_priority(r.priority) is r for r in StopReason.known())
    combine = StopReason.combine
    assert combine([StopReason.NOT_STOPPED, StopReason.GAP_GREW]) is StopReason.GAP_GREW
    assert combine([StopReason.GAP_GREW_NO_LOSS, StopReason.GAP_GREW, StopReason.NOT_STOPPED]) is StopReason.GAP_GREW_NO_LOSS
    assert combine([StopReason.GAP_GREW, StopReason.GAP_GREW_NO_LOSS]) is StopReason.GAP_GREW_NO_LOSS
    assert combine([StopReason.NOT_STOPPED, StopReason.NOT_STOPPED]) is StopReason.NOT_STOPPED
    assert combine([]) is StopReason.NOT_STOPPED
    # as the tracker does it: the max of the ranks' priorities, back to a reason
    ranks = [StopReason.GAP_GREW, StopReason.NOT_STOPPED, StopReason.GAP_GREW_NO_LOSS]
    assert StopReason.from_priority(max(r.priority for r in ranks)) is combine(ranks)
