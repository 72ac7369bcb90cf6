"""The paired bootstrap of a gap's growth (issue #19, part 2): per-sentence units, the rule, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairness_callback import FairnessEarlyStopping, FairnessTracker
from fairness_callback.probe.growth import GapUnits, growth_lower_bound, growth_samples
from fairness_callback.training.history import read_history
from support import make_model, make_tokenizer, small_probe


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def test_units_give_the_probes_own_gaps(tokenizer):
    probe = small_probe(tokenizer, sentences=16, seeds=(0, 1, 2))
    result = probe.run(make_model(tokenizer))
    for key in ("jsdp/gap", "ar/gap", "jsdp/abs_gap", "pro/jsdp/gap", "anti/ar/gap"):
        units = probe.gap_units(result, key)
        expected = result.metrics[key.replace("abs_gap", "gap")]
        assert units.gap == pytest.approx(expected, rel=1e-9, abs=1e-12), key
        again = GapUnits.decode(json.loads(json.dumps(units.encode())))
        assert again.gap == pytest.approx(expected, rel=1e-5), key  # float32 sums
        assert np.array_equal(again.counts, units.counts)
    assert probe.gap_units(result, "jsdp/lean") is None and probe.gap_units(result, "acc/male") is None


def synthetic(rng, n=400, shift=0.0, noise=0.05):
    """Units of n sentences, one gendered prompt each: female values get ``shift`` more than male ones."""
    female = rng.random(n) < 0.5
    base = rng.random(n) * 0.3
    values = base + noise * rng.standard_normal(n) + np.where(female, shift, 0.0)
    group = np.where(female, 1, 0)
    return base, female, GapUnits.from_values(values, group, np.arange(n), (1, 0), n)


def test_growth_is_paired_and_one_sided():
    rng = np.random.default_rng(1)
    base, female, best = synthetic(rng)
    n = len(base)
    same = GapUnits.from_values(base + 0.05 * rng.standard_normal(n), np.where(female, 1, 0), np.arange(n), (1, 0), n)
    grown = GapUnits.from_values(
        base + 0.05 * rng.standard_normal(n) + np.where(female, 0.2, 0.0), np.where(female, 1, 0), np.arange(n), (1, 0), n
    )
    assert growth_lower_bound(best, same, alpha=0.05) < 0.02
    assert growth_lower_bound(best, grown, alpha=0.05) > 0.1
    samples = growth_samples(best, grown, n_boot=500)
    assert len(samples) == 500 and np.isclose(np.median(samples), abs(grown.gap) - abs(best.gap), atol=0.03)
    with pytest.raises(ValueError, match="not the same probe set"):
        growth_samples(best, GapUnits(np.zeros((2, 3)), np.ones((2, 3))))


def test_the_bootstrap_rule_counts_only_growth_with_confidence():
    rng = np.random.default_rng(2)
    base, female, best = synthetic(rng)
    n, group = len(base), np.where(female, 1, 0)

    def units(shift):
        return GapUnits.from_values(
            base + 0.05 * rng.standard_normal(n) + np.where(female, shift, 0.0), group, np.arange(n), (1, 0), n
        )

    point = FairnessEarlyStopping(patience=2, min_delta=0.0)
    boot = FairnessEarlyStopping(patience=2, min_delta=0.0, test="bootstrap", alpha=0.05)
    sequence = [best] + [units(0.0) for _ in range(6)]  # noise only: the point rule stops, the test never does
    point_stops = [point.step(s, {"jsdp/gap": u.gap}).should_stop for s, u in enumerate(sequence)]
    boot_stops = [boot.step(s, {"jsdp/gap": u.gap}, units=u).should_stop for s, u in enumerate(sequence)]
    assert any(point_stops) and not any(boot_stops)
    grown = FairnessEarlyStopping(patience=2, test="bootstrap", alpha=0.05)
    decisions = [grown.step(s, {"jsdp/gap": u.gap}, units=u) for s, u in enumerate([best, units(0.2), units(0.25)])]
    assert [d.should_stop for d in decisions] == [False, False, True]
    assert "with confidence (paired bootstrap)" in decisions[-1].message


def test_the_bootstrap_rule_resumes_with_its_best_steps_units():
    rng = np.random.default_rng(3)
    base, female, best = synthetic(rng)
    n, group = len(base), np.where(female, 1, 0)
    grown = GapUnits.from_values(base + np.where(female, 0.2, 0.0), group, np.arange(n), (1, 0), n)
    first = FairnessEarlyStopping(patience=2, test="bootstrap", alpha=0.05)
    first.step(0, {"jsdp/gap": best.gap}, units=best)
    first.step(1, {"jsdp/gap": grown.gap}, units=grown)
    resumed = FairnessEarlyStopping(patience=2, test="bootstrap", alpha=0.05)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.best_units is not None and resumed.wait == 1
    assert resumed.step(2, {"jsdp/gap": grown.gap}, units=grown).should_stop


def test_bad_bootstrap_settings_are_errors():
    with pytest.raises(ValueError, match="test='bootstrap'\\) needs a '.../<ar|jsdp>/gap'"):
        FairnessEarlyStopping(monitor="jsdp/lean", test="bootstrap")
    with pytest.raises(ValueError, match="test must be 'point' or 'bootstrap'"):
        FairnessEarlyStopping(test="paired")
    with pytest.raises(ValueError, match="needs the gap's per-sentence values"):
        FairnessEarlyStopping(test="bootstrap").step(0, {"jsdp/gap": 0.1})


def test_the_monitor_runs_the_bootstrap_rule_and_keeps_units_in_the_history(tokenizer, tmp_path):
    probe = small_probe(tokenizer, sentences=12, seeds=(0, 1))
    rule = FairnessEarlyStopping(test="bootstrap", patience=2, alpha=0.05)
    tracker = FairnessTracker(every_n_steps=1, probe=probe, early_stopping=rule, history_path=tmp_path / "h.jsonl")
    model = make_model(tokenizer)
    outcomes = [tracker.start(model), tracker.step(model, 1)]  # the same weights: no growth
    assert not any(o.failed or o.should_stop for o in outcomes) and rule.best_units is not None
    (line,) = [r for r in read_history(tmp_path / "h.jsonl") if r["event"] == "probe" and r["step"] == 1]
    assert GapUnits.decode(line["units"]["jsdp/gap"]).gap == pytest.approx(line["jsdp/gap"], rel=1e-5)


def test_units_of_official_winobias_stay_small(tokenizer, winobias_dir):
    """The bytes a probe line spends on one gap's units, for every official WinoBias Type 2 sentence."""
    import torch

    from fairness_callback import FairnessProbe, ProbeSet
    from fairness_callback.probe.scoring import OptionScores

    probe = FairnessProbe(tokenizer, ProbeSet.from_winobias(winobias_dir))
    n, k = len(probe), len(probe.task.groups)
    generator = torch.Generator().manual_seed(0)  # random scores: as incompressible as a model's
    scores = OptionScores(
        torch.randint(1, 1000, (n, k), generator=generator).double(), -10 * torch.rand((n, k), generator=generator)
    )
    result = probe.result(scores)
    for key in ("jsdp/gap", "ar/gap"):
        size = len(json.dumps(probe.gap_units(result, key).encode()))
        assert size < 20_000, (key, size)  # a probe line keeps two such keys: far under 100 kB
