"""What would a stop rule have done? Rules replayed over a finished run's history (issue #19, part 3)."""

from __future__ import annotations

import numpy as np
import pytest

from fairness_callback import FairnessTracker
from fairness_callback.cli import main
from fairness_callback.offline.report import load_probes
from fairness_callback.offline.rule_replay import replay_rule
from fairness_callback.probe.growth import GapUnits
from fairness_callback.training.history import HistoryWriter
from fairness_callback.training.records import ProbeRecord
from fairness_callback.training.stopping import parse_stop_rule as parse_rule
from support import ScriptedGapProbe, make_model, make_tokenizer, point_rule

GAPS = [0.05, 0.01, 0.02, 0.012, 0.03, 0.04, 0.05]


def live_run(tmp_path, **rule):
    tokenizer = make_tokenizer()
    path = tmp_path / "h.jsonl"
    tracker = FairnessTracker(
        every_n_steps=1, probe=ScriptedGapProbe(tokenizer, GAPS), history_path=path, early_stopping=point_rule(**rule)
    )
    model = make_model(tokenizer)
    tracker.update_loss({"val_loss": 2.0})
    outcome = tracker.start(model)
    for step in range(1, len(GAPS)):
        tracker.update_loss({"val_loss": 2.0 - 0.01 * step})
        outcome = tracker.step(model, step)
        if outcome.should_stop:
            break
    return path, outcome


@pytest.mark.slow
def test_a_replayed_rule_stops_where_the_live_rule_stopped(tmp_path):
    path, live = live_run(tmp_path, patience=2, min_delta=0.005)
    assert live.should_stop
    probes, _ = load_probes(path)
    outcome = replay_rule(probes, "patience=2,min_delta=0.005")
    assert outcome.stop_step == live.step and outcome.message == live.message
    assert (outcome.best_step, outcome.gap_at_best, outcome.gap_at_stop) == (1, 0.01, GAPS[live.step])
    never = replay_rule(probes, "patience=10")
    assert never.stop_step is None and "never stops; fairest step 1 (+0.01)" in never.describe()


def history_with_units(path, shifts, seed=0, n=400):
    """A history whose probe lines carry the gap's units: female values shifted by ``shifts[i]`` at probe i."""
    rng = np.random.default_rng(seed)
    female = rng.random(n) < 0.5
    base = rng.random(n) * 0.3
    writer = HistoryWriter(path)
    writer.start_run({"framework": "custom"})
    for step, shift in enumerate(shifts):
        values = base + 0.05 * rng.standard_normal(n) + np.where(female, shift, 0.0)
        units = GapUnits.from_values(values, np.where(female, 1, 0), np.arange(n), (1, 0), n)
        writer.append(
            ProbeRecord(
                step=step,
                values={"jsdp/gap": units.gap, "jsdp/abs_gap": abs(units.gap), "mwu_p/jsdp": 0.5, "val_loss": 1.0},
                units={"jsdp/gap": units.encode()},
            )
        )


def test_the_bootstrap_rule_replayed_ignores_noise_the_point_rule_stops_on(tmp_path):
    path = tmp_path / "h.jsonl"
    history_with_units(path, [0.0] * 8)  # noise only
    probes, _ = load_probes(path)
    assert replay_rule(probes, "patience=2,min_delta=0").stop_step is not None
    assert replay_rule(probes, "test=bootstrap,alpha=0.05,patience=2,min_delta=0").stop_step is None
    grown = tmp_path / "grown.jsonl"
    history_with_units(grown, [0.0, 0.0, 0.2, 0.25, 0.3])
    outcome = replay_rule(load_probes(grown)[0], "test=bootstrap,alpha=0.05,patience=2,min_delta=0")
    assert outcome.stop_step == 3 and outcome.reason == "gap_grew"


@pytest.mark.parametrize(
    "text, message",
    [
        ("patience=three", r"patience='three' is not int"),
        ("patience=none", r"patience='none' is not int"),
        ("rebase_loss_drop=half", r"rebase_loss_drop='half' is not float or none"),
        ("patiense=3", r"'patiense=3' is not NAME=VALUE with NAME 'rule' or an argument of rule 'best': monitor, min_delta"),
        ("test=pont", r"test='pont' is not one of point, bootstrap"),
        ("rule=cusum,use_abs=maybe", r"use_abs='maybe' is not true or false"),
        ("rule=cusumm", r"unknown stop rule 'cusumm'; known: best, cusum, ewma, rank-cusum"),
        ("rule=cusum,min_delta=0.01", r"'min_delta=0.01' is not NAME=VALUE with NAME 'rule' or an argument of rule 'cusum'"),
        ("rule=cusum,threshold=-1", r"threshold must be > 0"),
        ("monitor=jsdp/gapp", r"monitor='jsdp/gapp'\): the probes have no such metric"),
        ("test=bootstrap,monitor=jsdp/lean", "test='bootstrap'\\) needs"),
    ],
)
def test_a_bad_rule_names_its_field(tmp_path, text, message):
    path = tmp_path / "h.jsonl"
    history_with_units(path, [0.0, 0.0])
    with pytest.raises(ValueError, match=message):
        replay_rule(load_probes(path)[0], text)


def test_parse_rule_reads_every_type():
    rule = parse_rule("patience=4,min_delta=0.01,use_abs=false,test=bootstrap,loss_key=eval_loss")
    assert (rule.patience, rule.min_delta, rule.use_abs, rule.test, rule.loss_key) == (4, 0.01, False, "bootstrap", "eval_loss")
    assert parse_rule("rebase_loss_drop=0.2").rebase_loss_drop == 0.2
    assert parse_rule("rebase_loss_drop=none").rebase_loss_drop is None
    assert parse_rule("loss_key=none").loss_key is None


@pytest.mark.slow
def test_the_cli_prints_each_rule(tmp_path, capsys):
    path, live = live_run(tmp_path, patience=2, min_delta=0.005)
    assert main(["report", str(path), "--stop-rule", "patience=2,min_delta=0.005", "--stop-rule", "patience=10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"rule 'patience=2,min_delta=0.005': stops at step 5 (gap_grew), gap +0.04; held-out loss 1.95 "
        f"(best 1.95, +0.0%); fairest step 1 (+0.01): {live.message}"
    )
    assert lines[1] == "rule 'patience=10': never stops; fairest step 1 (+0.01)"
    with pytest.raises(SystemExit, match="patiense"):
        main(["report", str(path), "--stop-rule", "patiense=2"])


def test_a_bbq_history_is_replayed_with_its_own_gap_groups():
    """``min_accuracy`` reads the accuracies of the history's task: BBQ's consistent / inconsistent answers."""
    probes = []
    for step, gap, accuracy in ((0, 0.0, 0.2), (10, 0.01, 0.9), (20, 0.2, 0.9), (30, 0.2, 0.9), (40, 0.2, 0.9)):
        line = {"event": "probe", "step": step, "jsdp/gap": gap, "jsdp/abs_gap": gap}
        for group in ("consistent", "inconsistent", "unknown"):
            line[f"ar/{group}"], line[f"acc/{group}"] = 2.0, accuracy
        probes.append(line)
    outcome = replay_rule(probes, "patience=3,min_accuracy=0.5")
    assert outcome.stop_step == 40 and "acc" not in outcome.message  # step 0 ignored by its accuracy
    with pytest.raises(ValueError, match="acc/female"):
        replay_rule([{k: v for k, v in p.items() if not k.startswith("ar/")} for p in probes], "min_accuracy=0.5")
