"""Several probes in one run: ``probes={"gender": FairnessProbe(tok), "they": ..., "religion": ...}``.

A :class:`ProbeSuite` runs each probe in turn (each shards its own prompts over the ranks, so every
rank makes the same forward calls) and merges their results into one :class:`ProbeResult` whose
keys carry the probe's name in front: ``religion/jsdp/gap``, ``gender/ar/male``. The monitor
treats it as one probe: one history line, one stop vote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import ProbeSet
from ..data.registry import ProbeSetSpec, probe_set_specs
from .distributed import gather_from_ranks, max_over_ranks, world
from .fairness_probe import FairnessProbe, ProbeResult
from .faults import ProbeFailure, describe
from .keys import METRIC_KINDS
from .tasks import ProbeTask

__all__ = [
    "axis_keywords",
    "axis_probe_sets",
    "GuardedRun",
    "ProbeSuite",
    "run_guarded",
]


class ProbeSuite:
    """Named probes run one after the other, their metrics merged under ``<name>/``."""

    def __init__(self, probes: Mapping[str, FairnessProbe]) -> None:
        if not probes:
            raise ValueError("probes must name at least one probe")
        bad = [name for name in probes if not name or "/" in name]
        if bad:
            raise ValueError(f"probe names may not be empty or contain '/': {bad}")
        kinds = [name for name in probes if name in METRIC_KINDS]
        if kinds:
            raise ValueError(f"probe names may not be a metric kind ({', '.join(sorted(METRIC_KINDS))}): {kinds}")
        self.probes = dict(probes)
        self.name = "+".join(f"{name}:{getattr(probe.prompt_set, 'name', '?')}" for name, probe in self.probes.items())

    def __len__(self) -> int:
        return sum(len(probe) for probe in self.probes.values())

    @property
    def tasks(self) -> dict[str, ProbeTask]:
        return {name: probe.task for name, probe in self.probes.items()}

    def run_each(self, model: torch.nn.Module, distributed: bool = False) -> dict[str, ProbeResult]:
        """Every probe's own result, by name (on every rank when ``distributed``).

        Every probe runs even when an earlier one failed (so every rank makes the same
        collectives); then, if any failed on any rank, :class:`~fairness_callback.probe.faults.ProbeFailure`
        is raised on every rank, naming the first failed probe.
        """
        outcome = run_guarded(self.probes, model, distributed)
        if outcome.failures:
            name, ranks = next(iter(outcome.failures.items()))
            raise ProbeFailure(ranks, name) from outcome.errors.get(name)
        return outcome.results  # type: ignore[return-value]

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


@dataclass
class GuardedRun:
    """What :func:`run_guarded` gives back, the same on every rank (but ``errors``).

    ``results``: the probes that succeeded on every rank; ``failures``: ``{probe name: {rank:
    "Type: first line"}}`` of those that failed on any rank; ``errors``: what each failed probe
    raised on this rank (:meth:`local_error` gives this rank's own fault, if it had one).
    """

    results: dict[str | None, ProbeResult] = field(default_factory=dict)
    failures: dict[str | None, dict[int, str]] = field(default_factory=dict)
    errors: dict[str | None, BaseException] = field(default_factory=dict)

    def local_error(self, name: str | None) -> BaseException | None:
        """The exception this rank's own part of probe ``name`` raised (None: it failed elsewhere only)."""
        error = self.errors.get(name)
        if isinstance(error, ProbeFailure):
            return error.__cause__
        return error


def run_guarded(probes: Mapping[str, Any] | Mapping[str | None, Any], model: torch.nn.Module, distributed: bool) -> GuardedRun:
    """Run each probe (named, or ``{None: probe}`` for one) and agree across ranks on which failed.

    Nothing a probe raises leaves this function early, so every rank runs every probe's
    collectives in the same order: a probe that fails in its scoring fails on every rank alike
    (:meth:`FairnessProbe.score`); one that fails after it (its metrics, on one rank) is caught
    here. Then one all-reduce of a failure flag per probe, and, only if some flag is set, one
    all-gather of the reasons, make every rank drop the same probes and know why.
    """
    rank = world()[0] if distributed else 0
    outcome = GuardedRun()
    local: dict[str | None, dict[int, str]] = {}
    for name, probe in probes.items():
        try:
            outcome.results[name] = probe.run(model, distributed=distributed)
        except Exception as exc:  # noqa: BLE001 - reported below, on every rank alike
            outcome.errors[name] = exc
            local[name] = exc.ranks if isinstance(exc, ProbeFailure) else {rank: describe(exc)}
    names = list(probes)
    if distributed and world()[1] > 1:
        flags = max_over_ranks([int(name in local) for name in names])
        if any(flags):
            for reasons in gather_from_ranks(local):
                for name, ranks in reasons.items():
                    outcome.failures.setdefault(name, {}).update(ranks)
    else:
        outcome.failures = local
    outcome.failures = {name: dict(sorted(outcome.failures[name].items())) for name in names if name in outcome.failures}
    for name in outcome.failures:
        outcome.results.pop(name, None)
    return outcome


def axis_keywords(spec: ProbeSetSpec) -> dict[str, str | None]:
    """The keywords of :func:`axis_probe_sets` for the registered set ``spec``, each with the loader
    option it gives: its probe name (the directory, or None for a set without one: a switch), then
    ``<probe name>_<option>`` of each of its loader's other options (BBQ: ``bbq_categories``)."""
    keywords: dict[str, str | None] = {spec.probe_name: "directory" if spec.needs_directory else None}
    keywords.update({f"{spec.probe_name}_{option}": option for option in spec.options if option != "directory"})
    return keywords


def axis_probe_sets(**chosen: Any) -> dict[str, ProbeSet]:
    """The probe sets of the other axes, by probe name, for the registered sets chosen by their probe
    names (:attr:`~fairness_callback.data.registry.ProbeSetSpec.probe_name`), in registration order:
    ``winogender=DIR`` (probe ``"winogender"``), ``they=True`` (the built-in singular-they set, probe
    ``"they"``), ``bbq=DIR`` with ``bbq_categories`` (one per BBQ category in ``bbq``, default every file
    there, named by the category in lower case: ``religion``, ``race_ethnicity``); a set's other loader
    options are ``<probe name>_<option>`` (:func:`axis_keywords`). None or False: not probed. The
    command line (``probe``, ``replay``, ``demo``) and the demo read them here; a missing or malformed
    file raises (OSError, ValueError naming the file and line), a keyword that no registered set has,
    TypeError.
    """
    specs = probe_set_specs()
    keywords = {spec.name: axis_keywords(spec) for spec in specs}
    known = [key for each in keywords.values() for key in each]
    unknown = [key for key in chosen if key not in known]
    if unknown:
        raise TypeError(f"axis_probe_sets() got unexpected keyword(s) {unknown}; the registered sets' are {known}")
    sets: dict[str, ProbeSet] = {}
    for spec in specs:
        value = chosen.get(spec.probe_name)
        if value is None or value is False or not (spec.needs_directory or value):
            continue
        options = {"directory": value} if spec.needs_directory else {}
        for key, option in keywords[spec.name].items():
            if key != spec.probe_name and option is not None and chosen.get(key) is not None:
                options[option] = chosen[key]
        sets.update(spec.as_axes(**options))
    return sets
