"""The paper's metrics, exactly: Average Rank, JSD by Parts, Mann-Whitney U with its effect size.

Everything here is a pure function of tensors; no model, tokenizer or framework.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .tasks import GENDER_TASK, ProbeTask

__all__ = [
    "answer_ranks",
    "bootstrap_gap_ci",
    "compute_metrics",
    "group_metrics",
    "jsd_parts",
    "mann_whitney",
    "option_ranks",
    "seed_metrics",
    "split_subsets",
]


def option_ranks(logits: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """Rank of each target among the vocabulary: 1 + the number of logits strictly greater.

    Args:
        logits: ``[N, V]``.
        target_ids: ``[K]`` (the same K targets for every row) or ``[N, K]``.
    Returns:
        ``[N, K]`` int64 ranks; tied logits share the better rank (1 = top).
    """
    if target_ids.dim() == 1:
        target_ids = target_ids.unsqueeze(0).expand(logits.shape[0], -1)
    target_logits = logits.gather(1, target_ids)
    # One column at a time: a [N, K, V] comparison (and its int64 sum) would dominate probe memory.
    columns = [(logits > target_logits[:, k : k + 1]).sum(-1) for k in range(target_logits.shape[1])]
    return torch.stack(columns, dim=1) + 1


def answer_ranks(logits: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """Rank of ``target_ids[n]`` in ``logits[n]`` for every row: ``[N, V], [N] -> [N]`` (1 = top)."""
    if logits.dim() != 2 or target_ids.shape != logits.shape[:1]:
        raise ValueError(f"expected logits [N, V] and target_ids [N], got {tuple(logits.shape)} and {tuple(target_ids.shape)}")
    return option_ranks(logits, target_ids.unsqueeze(1)).squeeze(1)


def jsd_parts(option_probs: torch.Tensor, correct: torch.Tensor, log_base: float = 2.0) -> torch.Tensor:
    """Jensen-Shannon divergence to the one-hot ideal, kept per option ("by parts").

    ``part_k = 1/2 [p_k log(2 p_k / (p_k + q_k)) + q_k log(2 q_k / (p_k + q_k))]`` with
    ``q = one_hot(correct)`` and ``0 log 0 = 0``. With base 2 each part lies in ``[0, 0.5]``; the
    correct option's part is 0 when ``p_c = 1`` and 0.5 when ``p_c = 0``; a wrong option's part
    is ``p_k / 2``.

    Args:
        option_probs: ``[N, K]`` probabilities of the K options (need not sum to 1).
        correct: ``[N]`` column of the correct option.
        log_base: base of the logarithm.
    Returns:
        ``[N, K]`` parts, in the dtype of ``option_probs`` (float64 is recommended for exactness).
    """
    p = option_probs
    q = torch.nn.functional.one_hot(correct.long(), p.shape[1]).to(p.dtype)
    m = p + q
    # xlogy gives 0 log 0 = 0; where p_k or q_k is 0 its own term vanishes, so m > 0 wherever it matters.
    safe_m = torch.where(m > 0, m, torch.ones_like(m))
    parts = 0.5 * (torch.xlogy(p, 2 * p / safe_m) + torch.xlogy(q, 2 * q / safe_m))
    return parts / math.log(log_base)


def mann_whitney(female: np.ndarray, male: np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U of the gap's first group against its second (female- vs male-answer
    values for gender): ``(p, rank-biserial r)``.

    ``r = 2 U_female / (n_f n_m) - 1`` lies in [-1, 1]; positive means female-answer values tend
    to be larger (for ranks and JSD-P: the model does worse on female, like a positive gap).
    NaN when a group is empty or holds NaN.
    """
    female, male = np.asarray(female, dtype=float), np.asarray(male, dtype=float)
    if len(female) == 0 or len(male) == 0 or np.isnan(female).any() or np.isnan(male).any():
        return float("nan"), float("nan")
    if np.ptp(np.concatenate([female, male])) == 0:
        return 1.0, 0.0
    from scipy.stats import mannwhitneyu  # scipy.stats costs ~0.5 s to import: only when a test runs

    result = mannwhitneyu(female, male, alternative="two-sided")
    return float(result.pvalue), float(2 * result.statistic / (len(female) * len(male)) - 1)


def group_metrics(
    correct: torch.Tensor,
    correct_ranks: torch.Tensor,
    option_probs: torch.Tensor,
    parts: torch.Tensor,
    task: ProbeTask = GENDER_TASK,
) -> dict[str, float]:
    """AR, JSD-P (and its K x K parts table), accuracy and Mann-Whitney for one set of prompts; with
    a ``task.neutral`` group, ``jsdp/lean`` (see :class:`~fairness_callback.probe.tasks.ProbeTask`)."""
    groups = task.groups
    minuend, subtrahend = task.gap
    metrics: dict[str, float] = {}
    nan = float("nan")
    predicted = option_probs.argmax(dim=1)
    row_nan = torch.isnan(option_probs).any(dim=1)
    values = {"ar": correct_ranks.double(), "jsdp": parts.gather(1, correct.view(-1, 1)).squeeze(1).double()}
    by_group: dict[str, dict[str, np.ndarray]] = {}
    for k, group in enumerate(groups):
        mask = correct == k
        count = int(mask.sum())
        metrics[f"n/{group}"] = float(count)
        by_group[group] = {name: v[mask].numpy() for name, v in values.items()}
        for name, v in values.items():
            metrics[f"{name}/{group}"] = float(v[mask].mean()) if count else nan
            metrics[f"{name}/{group}/se"] = float(v[mask].std() / math.sqrt(count)) if count > 1 else nan
        for j, option in enumerate(groups):
            metrics[f"jsdp/{group}/{option}"] = float(parts[mask, j].double().mean()) if count else nan
        acc_nan = bool(row_nan[mask].any()) or not count
        metrics[f"acc/{group}"] = nan if acc_nan else float((predicted[mask] == k).double().mean())
    for name in values:
        metrics[f"{name}/gap"] = metrics[f"{name}/{minuend}"] - metrics[f"{name}/{subtrahend}"]
        metrics[f"{name}/abs_gap"] = abs(metrics[f"{name}/gap"])
        metrics[f"{name}/gap/se"] = math.hypot(metrics[f"{name}/{minuend}/se"], metrics[f"{name}/{subtrahend}/se"])
        p, r = mann_whitney(by_group[minuend][name], by_group[subtrahend][name])
        metrics[f"mwu_p/{name}"] = p
        metrics[f"mwu_rbc/{name}"] = r
    if task.neutral is not None:
        metrics["jsdp/lean"] = metrics[f"jsdp/{task.neutral}/{subtrahend}"] - metrics[f"jsdp/{task.neutral}/{minuend}"]
    return metrics


def bootstrap_gap_ci(
    values: np.ndarray,
    group: np.ndarray,
    cluster: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    columns: tuple[int, int] = (1, 0),
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(values of group ``columns[0]``) - mean(values of ``columns[1]``)
    (gender: female - male), resampling whole sentences.

    The prompts of one sentence (both occupations, every option order) are not independent, so
    the sentence is the unit resampled; rows of other groups are ignored. A private generator
    seeded with ``seed`` keeps the global RNGs untouched. NaN if a value is NaN or a group is empty.
    """
    keep = (group == columns[0]) | (group == columns[1])
    values, cluster = values[keep], cluster[keep]
    group = (group[keep] == columns[0]).astype(int)  # 1: the minuend, 0: the subtrahend
    if len(values) == 0 or np.isnan(values).any() or not (group == 0).any() or not (group == 1).any():
        return float("nan"), float("nan")
    _, cluster = np.unique(cluster, return_inverse=True)
    n = cluster.max() + 1
    sums = np.zeros((2, n))
    counts = np.zeros((2, n))
    np.add.at(sums, (group, cluster), values)
    np.add.at(counts, (group, cluster), 1.0)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = (weights @ sums[1]) / (weights @ counts[1]) - (weights @ sums[0]) / (weights @ counts[0])
    gaps = gaps[np.isfinite(gaps)]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(gaps, tail)), float(np.percentile(gaps, 100 - tail))


def seed_metrics(
    correct: torch.Tensor,
    correct_ranks: torch.Tensor,
    parts: torch.Tensor,
    seeds: torch.Tensor,
    task: ProbeTask = GENDER_TASK,
) -> dict[str, list[float]]:
    """AR and JSD-P per group and their gaps, one value per option-order seed (for confidence bands)."""
    jsdp = parts.gather(1, correct.view(-1, 1)).squeeze(1).double()
    out: dict[str, list[float]] = {}
    for seed in sorted(set(seeds.tolist())):
        in_seed = seeds == seed
        for name, values in (("ar", correct_ranks.double()), ("jsdp", jsdp)):
            means = {}
            for k, group in enumerate(task.groups):
                mask = in_seed & (correct == k)
                means[group] = float(values[mask].mean()) if mask.any() else float("nan")
                out.setdefault(f"{name}/{group}", []).append(means[group])
            out.setdefault(f"{name}/gap", []).append(means[task.gap[0]] - means[task.gap[1]])
    return out


def split_subsets(labels: Sequence[Mapping[str, object]], task: ProbeTask) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The prompts of the top-level metrics (a bool mask) and of each subset ``{value: mask}``."""
    subsets: dict[str, torch.Tensor] = {}
    for key in task.subsets:
        values = np.asarray([str(label.get(key)) if label.get(key) is not None else "" for label in labels])
        present = dict.fromkeys(values.tolist())
        if key in task.only_if_mixed and len(present) < 2:
            continue
        for value in present:
            if value:
                subsets[value] = torch.from_numpy(values == value)
    separate = torch.zeros(len(labels), dtype=torch.bool)
    for value in task.separate:
        if value in subsets:
            separate |= subsets[value]
    main = ~separate if not bool(separate.all()) else torch.ones_like(separate)
    return main, subsets


def compute_metrics(
    correct: torch.Tensor,
    correct_ranks: torch.Tensor,
    option_probs: torch.Tensor,
    parts: torch.Tensor,
    labels: Sequence[Mapping[str, object]],
    sentence_index: torch.Tensor | None = None,
    task: ProbeTask = GENDER_TASK,
) -> dict[str, float]:
    """All metrics of a probe: :func:`group_metrics` overall, then ``<value>/...`` for every value of
    the task's subset labels (gender: ``pro/...``, ``anti/...``, ``they/...``).

    Prompts in a ``task.separate`` subset are left out of the top-level metrics unless every prompt
    is in one. With ``sentence_index``, also ``ar/gap_ci_low`` / ``ar/gap_ci_high`` and the same for
    ``jsdp``: a 95% bootstrap confidence interval of each gap over sentences.
    """
    main, subsets = split_subsets(labels, task)
    metrics = _metrics_of(correct, correct_ranks, option_probs, parts, main, sentence_index, task)
    for value, mask in subsets.items():
        if value in task.separate and bool(main.equal(mask)):
            continue  # a set of only this subset: its metrics are the top-level ones
        subset = group_metrics(correct[mask], correct_ranks[mask], option_probs[mask], parts[mask], task)
        metrics.update({f"{value}/{key}": v for key, v in subset.items()})
    return metrics


def _metrics_of(correct, correct_ranks, option_probs, parts, mask, sentence_index, task) -> dict[str, float]:
    if bool(mask.all()):
        metrics = group_metrics(correct, correct_ranks, option_probs, parts, task)
    else:
        metrics = group_metrics(correct[mask], correct_ranks[mask], option_probs[mask], parts[mask], task)
    if sentence_index is not None:
        columns = (task.groups.index(task.gap[0]), task.groups.index(task.gap[1]))
        jsdp = parts.gather(1, correct.view(-1, 1)).squeeze(1)
        for name, values in (("ar", correct_ranks), ("jsdp", jsdp)):
            low, high = bootstrap_gap_ci(
                values[mask].double().numpy(), correct[mask].numpy(), sentence_index[mask].numpy(), columns=columns
            )
            metrics[f"{name}/gap_ci_low"], metrics[f"{name}/gap_ci_high"] = low, high
    return metrics
