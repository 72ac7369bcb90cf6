"""Metric functions against values computed by hand."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import mannwhitneyu

from fairness_callback.probe.metrics import answer_ranks, compute_metrics, group_metrics, jsd_parts, mann_whitney, option_ranks


def test_answer_ranks_by_hand():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5], [0.0, -1.0, 5.0, 4.0]])
    assert answer_ranks(logits, torch.tensor([2, 3])).tolist() == [2, 2]
    assert answer_ranks(logits, torch.tensor([3, 1])).tolist() == [4, 4]
    assert answer_ranks(logits, torch.tensor([1, 2])).tolist() == [1, 1]


def test_ties_share_the_better_rank():
    logits = torch.tensor([[2.0, 3.0, 3.0, 3.0, 1.0]])
    # three tokens tie at the top: each is rank 1 (nothing strictly greater); the next is rank 4
    assert option_ranks(logits, torch.tensor([1, 2, 3, 0, 4])).tolist() == [[1, 1, 1, 4, 5]]


def test_answer_ranks_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits \\[N, V\\]"):
        answer_ranks(torch.zeros(3), torch.tensor([0]))


def test_jsd_parts_by_hand():
    probs = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    parts = jsd_parts(probs, torch.tensor([0]))
    correct_part = 0.5 * (0.5 * math.log2(2 * 0.5 / 1.5) + math.log2(2 / 1.5))
    assert parts[0].tolist() == pytest.approx([correct_part, 0.125, 0.125], abs=1e-12)
    # when p sums to one, the parts add up to the full Jensen-Shannon divergence
    full = jensenshannon([0.5, 0.25, 0.25], [1, 0, 0], base=2) ** 2
    assert float(parts.sum()) == pytest.approx(full, abs=1e-12)


def test_jsd_parts_zero_log_zero_and_extremes():
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    parts = jsd_parts(probs, torch.tensor([0, 0, 0]))
    assert torch.isfinite(parts).all()
    assert parts.tolist() == [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.5, 0.0]]


def test_jsd_parts_log_base():
    probs = torch.tensor([[0.2, 0.3, 0.1]], dtype=torch.float64)
    bits = jsd_parts(probs, torch.tensor([1]), log_base=2.0)
    nats = jsd_parts(probs, torch.tensor([1]), log_base=math.e)
    assert torch.allclose(nats, bits * math.log(2))


def test_mann_whitney_matches_scipy_and_sign():
    female, male = np.array([3.0, 4.0, 5.0, 2.5]), np.array([1.0, 2.0, 2.5])
    p, r = mann_whitney(female, male)
    ref = mannwhitneyu(female, male, alternative="two-sided")
    assert p == pytest.approx(ref.pvalue)
    assert r == pytest.approx(2 * ref.statistic / 12 - 1)
    assert r > 0  # female values larger -> positive, like a positive gap
    assert mann_whitney(np.array([3.0, 4.0]), np.array([1.0, 2.0]))[1] == pytest.approx(1.0)
    assert mann_whitney(np.array([1.0, 1.0]), np.array([1.0])) == (1.0, 0.0)
    assert all(math.isnan(v) for v in mann_whitney(np.array([]), male))
    assert all(math.isnan(v) for v in mann_whitney(np.array([np.nan, 1.0]), male))


def test_group_metrics_by_hand():
    correct = torch.tensor([0, 0, 1, 1, 2, 2])
    ranks = torch.tensor([1.0, 3.0, 10.0, 20.0, 2.0, 4.0], dtype=torch.float64)
    probs = torch.tensor(
        [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]],
        dtype=torch.float64,
    )
    parts = jsd_parts(probs, correct)
    m = group_metrics(correct, ranks, probs, parts)
    assert m["ar/male"] == 2.0 and m["ar/female"] == 15.0 and m["ar/not_specified"] == 3.0
    assert m["ar/gap"] == 13.0
    assert m["acc/male"] == 0.5 and m["acc/female"] == 0.5 and m["acc/not_specified"] == 0.5
    assert m["jsdp/male"] == pytest.approx(float(parts[:2, 0].mean()))
    assert m["jsdp/gap"] == pytest.approx(float(parts[2:4, 1].mean() - parts[:2, 0].mean()))
    assert m["jsdp/not_specified/male"] == pytest.approx((0.3 + 0.6) / 2 / 2)
    assert m["jsdp/male/male"] == m["jsdp/male"]
    assert m["n/female"] == 2.0
    assert m["mwu_p/ar"] == pytest.approx(mannwhitneyu([10, 20], [1, 3]).pvalue)
    assert m["mwu_rbc/ar"] == 1.0


def test_compute_metrics_splits_by_stereotype():
    correct = torch.tensor([0, 1, 0, 1])
    ranks = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    probs = torch.full((4, 3), 0.2, dtype=torch.float64)
    m = compute_metrics(
        correct, ranks, probs, jsd_parts(probs, correct), [{"stereotype": s} for s in ("pro", "pro", "anti", "anti")]
    )
    assert m["pro/ar/male"] == 1.0 and m["anti/ar/male"] == 3.0 and m["ar/male"] == 2.0
    assert m["anti/ar/gap"] == 1.0
    assert math.isnan(m["pro/ar/not_specified"])
    unlabelled = compute_metrics(correct, ranks, probs, jsd_parts(probs, correct), [{"stereotype": None}] * 4)
    assert not any(key.startswith(("pro/", "anti/")) for key in unlabelled)


def test_nan_rows_give_nan_metrics():
    correct = torch.tensor([0, 1, 2])
    ranks = torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64)
    probs = torch.tensor([[0.5, 0.2, 0.1], [float("nan")] * 3, [0.1, 0.1, 0.5]], dtype=torch.float64)
    m = group_metrics(correct, ranks, probs, jsd_parts(probs, correct))
    assert math.isnan(m["ar/female"]) and math.isnan(m["jsdp/gap"]) and math.isnan(m["acc/female"])
    assert math.isnan(m["mwu_p/ar"])
    assert m["ar/male"] == 1.0 and m["acc/male"] == 1.0


def test_bootstrap_gap_ci_resamples_sentences():
    from fairness_callback.probe.metrics import bootstrap_gap_ci

    group = np.array([0, 1, 2] * 4)
    cluster = np.repeat(np.arange(4), 3)
    constant = np.array([1.0, 3.0, 9.0] * 4)  # female - male is 2 in every sentence
    assert bootstrap_gap_ci(constant, group, cluster) == pytest.approx((2.0, 2.0))
    varied = np.array([1.0, 2.0, 0, 1.0, 4.0, 0, 1.0, 3.0, 0, 1.0, 5.0, 0])  # gaps 1, 3, 2, 4
    low, high = bootstrap_gap_ci(varied, group, cluster)
    assert 1.0 <= low < 2.5 < high <= 4.0
    assert bootstrap_gap_ci(varied, group, cluster) == (low, high)  # its own seeded generator
    assert all(math.isnan(v) for v in bootstrap_gap_ci(varied, np.full(12, 2), cluster))
