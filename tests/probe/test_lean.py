"""``jsdp/lean``: where the mass of "not specified" / "unknown" prompts goes, and the probe it stands for.

A probe of only singular-"they" sentences has no male or female answer, so no gap; beside other
probes (stop lines, sudden changes, the report's axes, the demo's table) its lean stands for it.
"""

import math

import pytest
import torch

from fairness_callback import FairnessProbe, FairnessTracker, ProbeSet
from fairness_callback.offline.report import write_report
from fairness_callback.probe.metrics import compute_metrics
from fairness_callback.probe.tasks import BBQ_TASK, GENDER_TASK, ProbeTask
from fairness_callback.training.history import read_history


def _by_hand(records, group: str, toward: str, away: str) -> float:
    """Mean over ``group`` prompts of (JSD-P part on ``toward``) - (part on ``away``), from the records."""
    values = [r["parts"][toward] - r["parts"][away] for r in records if r["group"] == group]
    return sum(values) / len(values)


def test_lean_of_a_they_probe_equals_the_records_by_hand(bpe_tokenizer, tiny_neox):
    probe = FairnessProbe(bpe_tokenizer, ProbeSet.builtin_they()[:30], seeds=(0, 1))
    result = probe.run(tiny_neox)
    m = result.metrics
    assert math.isnan(m["jsdp/gap"]) and m["n/male"] == m["n/female"] == 0  # no he / she: no gap
    assert m["jsdp/lean"] == pytest.approx(m["jsdp/not_specified/male"] - m["jsdp/not_specified/female"], abs=1e-12)
    assert m["jsdp/lean"] == pytest.approx(_by_hand(result.records, "not_specified", "male", "female"), rel=1e-5)
    assert m["jsdp/lean"] != 0.0
    assert probe.fairness_key == "jsdp/lean"
    assert "lean on not_specified prompts (JSD-P part on male - on female)" in result.table()


def test_a_gender_probe_is_watched_by_its_gap_and_also_has_a_lean(bpe_tokenizer, tiny_neox, small_probe_set):
    probe = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,))
    result = probe.run(tiny_neox)
    assert probe.fairness_key == "jsdp/gap"
    assert result.metrics["jsdp/lean"] == pytest.approx(_by_hand(result.records, "not_specified", "male", "female"), rel=1e-5)
    for subset in ("pro", "anti"):
        assert f"{subset}/jsdp/lean" in result.metrics


def test_winogender_they_subset_has_a_lean_and_the_probe_a_gap(bpe_tokenizer, winogender_dir):
    probe = FairnessProbe(bpe_tokenizer, ProbeSet.from_winogender(winogender_dir), seeds=(0,))
    assert probe.fairness_key == "jsdp/gap"  # he / she at the top level; "they" beside them


def test_bbq_lean_is_the_assumption_on_unknown_prompts():
    # three prompts whose correct answer is "unknown" (column 2), one of each other group
    correct = torch.tensor([2, 2, 2, 0, 1])
    probs = torch.tensor([[0.5, 0.1, 0.4], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    from fairness_callback.probe.metrics import jsd_parts

    parts = jsd_parts(probs, correct)
    ranks = torch.tensor([2, 1, 3, 1, 1])
    labels = [{"condition": "ambig"}] * 3 + [{"condition": "disambig"}] * 2
    m = compute_metrics(correct, ranks, probs, parts, labels, task=BBQ_TASK)
    by_hand = float((parts[:3, 0] - parts[:3, 1]).double().mean())  # consistent minus inconsistent
    assert m["jsdp/lean"] == pytest.approx(by_hand) and by_hand > 0  # mass leans to the consistent group
    assert m["ambig/jsdp/lean"] == pytest.approx(by_hand)
    assert math.isnan(m["disambig/jsdp/lean"])  # no unknown prompt there


def test_a_task_without_a_neutral_group_has_no_lean_and_bad_neutral_is_refused():
    task = ProbeTask(name="four", groups=("a", "b", "c", "d"), gap=("a", "b"))
    correct = torch.tensor([0, 1, 2, 3])
    probs = torch.full((4, 4), 0.25)
    from fairness_callback.probe.metrics import jsd_parts

    m = compute_metrics(correct, torch.ones(4, dtype=torch.long), probs, jsd_parts(probs, correct), [{}] * 4, task=task)
    assert "jsdp/lean" not in m
    for neutral in ("a", "z"):
        with pytest.raises(ValueError, match="neutral must be a group"):
            ProbeTask(name="x", groups=("a", "b", "c"), gap=("a", "b"), neutral=neutral)
    assert GENDER_TASK.neutral == "not_specified" and BBQ_TASK.neutral == "unknown"


@pytest.mark.slow
def test_gender_and_they_in_one_run_monitor_stop_line_and_report(bpe_tokenizer, tmp_path):
    from support import make_model

    model = make_model(bpe_tokenizer, seed=1)
    probes = {
        "gender": FairnessProbe(bpe_tokenizer, ProbeSet.builtin()[:12], seeds=(0,)),
        "they": FairnessProbe(bpe_tokenizer, ProbeSet.builtin_they()[:12], seeds=(0,)),
    }
    history = tmp_path / "h.jsonl"
    tracker = FairnessTracker(every_n_steps=1, probes=probes, history_path=history)
    assert tracker.fairness_keys() == ["gender/jsdp/gap", "they/jsdp/lean"]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batch = bpe_tokenizer(["The nurse said she was tired."] * 4, return_tensors="pt")
    tracker.start(model)
    for step in (1, 2, 3):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tracker.step(model, step)
    message = tracker._record_stop(3, monitor_stop_reason(), "stopping at step 3: test")
    lines = [r for r in read_history(history) if r.get("event") == "probe"]
    leans = [r["they/jsdp/lean"] for r in lines]
    assert all(math.isfinite(v) for v in leans) and len(set(leans)) > 1  # it moves with training
    assert all("they/jsdp/lean_sudden" in r and "gender/jsdp/gap_sudden" in r for r in lines)
    assert f"they/jsdp/lean {leans[-1]:+.4g}" in message

    summary = write_report(str(history), tmp_path / "report", monitor="gender/jsdp/gap")
    assert summary.axes == ("gender", "they")
    effect = summary.axis_effects[-1]
    they = next(row for row in effect.rows if row.axis == "they")
    at = next(r for r in lines if r["step"] == effect.step)
    assert they.key == "jsdp/lean" and they.gap == pytest.approx(at["they/jsdp/lean"])
    assert they.final_gap == pytest.approx(leans[-1]) and math.isnan(they.mwu_p)
    assert "`they` (`jsdp/lean`: it has no gap)" in summary.report.read_text()


def monitor_stop_reason():
    from fairness_callback.training.stopping import StopReason

    return StopReason.GAP_GREW


@pytest.mark.parametrize("several", [False, True])
def test_every_tensorboard_chart_key_is_logged(bpe_tokenizer, tiny_neox, several):
    """The custom-scalars layout names only keys the loggers get (the lean chart is not empty)."""
    gender = FairnessProbe(bpe_tokenizer, ProbeSet.builtin()[:6], seeds=(0,))
    if several:
        probes = {"gender": gender, "they": FairnessProbe(bpe_tokenizer, ProbeSet.builtin_they()[:6], seeds=(0,))}
        tracker = FairnessTracker(every_n_steps=1, probes=probes)
    else:
        tracker = FairnessTracker(every_n_steps=1, probe=gender)
    outcome = tracker.probe_now(tiny_neox, step=0)
    logged = tracker.metrics_log.select(outcome.metrics)
    charted = {key for charts in tracker.tensorboard_layout().values() for _, keys in charts.values() for key in keys}
    assert charted <= set(logged), sorted(charted - set(logged))
    assert any(key.endswith("jsdp/lean") for key in charted)
