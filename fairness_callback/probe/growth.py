"""Did a gap grow since the best step? A paired bootstrap over sentences (issue #19).

A gap is a difference of two group means over prompts (gender: female - male JSD-P). Its
sentences are the unit: the prompts of one sentence (both occupations, every option order) are
not independent, and the same sentences are probed at every step. :class:`GapUnits` keeps, per
sentence, the sum and the count of its prompts' values in each of the two groups, which is all a
bootstrap of the gap needs; two probes' units resampled with the *same* sentence weights give the
paired distribution of the gap's growth, and the growth counts only when its lower
``alpha``-quantile is above ``min_delta``.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "GapUnits",
    "growth_lower_bound",
    "growth_samples",
]


@dataclass(frozen=True)
class GapUnits:
    """Per-sentence sums and counts of a gap's two groups: ``sums[0]`` / ``counts[0]`` the minuend's
    (female), ``sums[1]`` / ``counts[1]`` the subtrahend's (male); one column per sentence, in the
    probe's sentence order (the same at every probe of one probe set)."""

    sums: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_values(
        cls, values: np.ndarray, group: np.ndarray, sentence: np.ndarray, columns: tuple[int, int], num_sentences: int
    ) -> GapUnits:
        """Units of per-prompt ``values`` whose correct group is ``group`` (column indices), in sentences
        ``sentence`` (0 .. num_sentences - 1); ``columns``: the gap's (minuend, subtrahend) groups."""
        sums = np.zeros((2, num_sentences))
        counts = np.zeros((2, num_sentences))
        for row, column in enumerate(columns):
            mask = group == column
            np.add.at(sums[row], sentence[mask], values[mask])
            np.add.at(counts[row], sentence[mask], 1.0)
        return cls(sums, counts)

    @property
    def gap(self) -> float:
        """The gap itself: mean of the minuend's prompts minus mean of the subtrahend's."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(self.sums[0].sum() / self.counts[0].sum() - self.sums[1].sum() / self.counts[1].sum())

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """The gap under each row of sentence ``weights`` [B, S]."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return weights @ self.sums[0] / (weights @ self.counts[0]) - weights @ self.sums[1] / (weights @ self.counts[1])

    def encode(self) -> dict[str, Any]:
        """A compact JSON form: float32 sums and uint16 counts, zlib-compressed, base64 (see :meth:`decode`)."""

        def pack(array: np.ndarray, dtype: str) -> str:
            return base64.b64encode(zlib.compress(np.ascontiguousarray(array, dtype=dtype).tobytes(), 6)).decode("ascii")

        return {"n": int(self.sums.shape[1]), "sums": pack(self.sums, "<f4"), "counts": pack(self.counts, "<u2")}

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> GapUnits:
        """The units of :meth:`encode`'s form."""

        def unpack(text: str, dtype: str) -> np.ndarray:
            return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).astype(float).reshape(2, int(data["n"]))

        return cls(unpack(data["sums"], "<f4"), unpack(data["counts"], "<u2"))


def growth_samples(best: GapUnits, now: GapUnits, n_boot: int = 1000, seed: int = 0, use_abs: bool = True) -> np.ndarray:
    """Bootstrap samples of the gap's growth from ``best`` to ``now`` (``|now| - |best|`` with
    ``use_abs``), resampling sentences with the same weights for both; non-finite samples dropped.
    A private generator seeded with ``seed`` leaves the global RNGs untouched."""
    if best.sums.shape != now.sums.shape:
        raise ValueError(f"the two probes have {best.sums.shape[1]} and {now.sums.shape[1]} sentences: not the same probe set")
    n = best.sums.shape[1]
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    then, later = best.resampled(weights), now.resampled(weights)
    growth = (np.abs(later) - np.abs(then)) if use_abs else (later - then)
    return growth[np.isfinite(growth)]


def growth_lower_bound(
    best: GapUnits, now: GapUnits, alpha: float, n_boot: int = 1000, seed: int = 0, use_abs: bool = True
) -> float:
    """The one-sided ``1 - alpha`` lower confidence bound of the growth (NaN if no sample is finite)."""
    samples = growth_samples(best, now, n_boot, seed, use_abs)
    return float(np.quantile(samples, alpha)) if len(samples) else float("nan")
