"""Several probes in one run: ``probes={"gender": FairnessProbe(tok), "they": ..., "religion": ...}``.

A :class:`ProbeSuite` runs each probe in turn (each shards its own prompts over the ranks, so every
rank makes the same forward calls) and merges their results into one :class:`ProbeResult` whose
keys carry the probe's name in front: ``religion/jsdp/gap``, ``gender/ar/male``. The monitor
treats it as one probe: one history line, one stop vote.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import torch

from .data import ProbeSet
from .probe import FairnessProbe, ProbeResult
from .tasks import ProbeTask


class ProbeSuite:
    """Named probes run one after the other, their metrics merged under ``<name>/``."""

    def __init__(self, probes: Mapping[str, FairnessProbe]) -> None:
        if not probes:
            raise ValueError("probes must name at least one probe")
        bad = [name for name in probes if not name or "/" in name]
        if bad:
            raise ValueError(f"probe names may not be empty or contain '/': {bad}")
        self.probes = dict(probes)
        self.name = "+".join(f"{name}:{getattr(probe.prompt_set, 'name', '?')}" for name, probe in self.probes.items())

    def __len__(self) -> int:
        return sum(len(probe) for probe in self.probes.values())

    @property
    def tasks(self) -> dict[str, ProbeTask]:
        return {name: probe.task for name, probe in self.probes.items()}

    def run_each(self, model: torch.nn.Module, distributed: bool = False) -> dict[str, ProbeResult]:
        """Every probe's own result, by name (on every rank when ``distributed``)."""
        return {name: probe.run(model, distributed=distributed) for name, probe in self.probes.items()}

    def run(self, model: torch.nn.Module, distributed: bool = False) -> ProbeResult:
        """Every probe on ``model`` (on every rank when ``distributed``); one merged result."""
        return self.merge(self.run_each(model, distributed))

    @staticmethod
    def merge(results: Mapping[str, ProbeResult]) -> ProbeResult:
        """One result of named results: keys under ``<name>/``, records tagged with ``probe``."""
        metrics: dict[str, float] = {}
        by_seed: dict[str, list[float]] = {}
        info: dict = {"probes": {}, "prefix_sharing": {}, "seconds": 0.0}
        records: list[dict] = []
        for name, result in results.items():
            metrics.update({f"{name}/{key}": value for key, value in result.metrics.items()})
            by_seed.update({f"{name}/{key}": values for key, values in result.by_seed.items()})
            records.extend({"probe": name, **record} for record in result.records)
            info["probes"][name] = result.info
            info["prefix_sharing"][name] = result.info.get("prefix_sharing")
            info["seconds"] += result.info.get("seconds", 0.0)
        return ProbeResult(metrics, records, info, by_seed)


def axis_probe_sets(
    *,
    they: bool = False,
    bbq: str | os.PathLike | None = None,
    bbq_categories: Sequence[str] | None = None,
) -> dict[str, ProbeSet]:
    """The probe sets of the other axes, by probe name: ``"they"`` (the built-in singular-they set)
    when ``they``, and one per BBQ category in ``bbq`` (``bbq_categories``, default every file
    there), named by the category in lower case (``religion``, ``race_ethnicity``). The CLI's
    ``--they`` / ``--bbq`` / ``--bbq-categories`` for ``probe``, ``replay`` and ``demo`` all read
    them here; a missing or malformed file raises (OSError, ValueError naming the file and line).
    """
    from .data.bbq import available_categories

    sets: dict[str, ProbeSet] = {}
    if they:
        sets["they"] = ProbeSet.builtin_they()
    if bbq is not None:
        categories = [c.strip() for c in bbq_categories] if bbq_categories else available_categories(bbq)
        for category in categories:
            sets[category.lower()] = ProbeSet.from_bbq(bbq, [category])
    return sets
