"""A probe task as data: its answer groups, the gap it reports, and how its prompts split into subsets.

Every tensor of the probe has one column per group, in :attr:`ProbeTask.groups` order; a prompt
names its correct group and, for each group, the option text whose first token is scored for it.
The metrics (Average Rank, JSD-P by parts, accuracy, Mann-Whitney) are computed per correct-answer
group exactly as for the gender task, and the gap is ``metric(gap[0]) - metric(gap[1])``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

__all__ = [
    "BBQ_TASK",
    "GENDER_TASK",
    "KNOWN_TASKS",
    "ProbeTask",
    "task_of_keys",
]


@dataclass(frozen=True)
class ProbeTask:
    """What a probe measures, independent of any data set.

    Args:
        name: e.g. ``"gender"``, ``"bbq"``.
        groups: the K >= 2 answer groups (metric columns), e.g. ``("male", "female", "not_specified")``.
        gap: ``(minuend, subtrahend)``: ``<metric>/gap = <metric>/<minuend> - <metric>/<subtrahend>``
            and the Mann-Whitney test compares these two groups (``mwu_p/<metric>``, ``mwu_rbc/<metric>``).
        subsets: prompt label keys whose values each give a subset reported under ``<value>/...``
            (e.g. ``"stereotype"``: ``pro/...`` and ``anti/...``); a None value is in no subset.
        separate: subset values whose prompts are kept out of the top-level metrics (reported only
            under their prefix), unless every prompt has one of them (e.g. ``"they"``: a Winogender
            probe reports he/she at the top and "they" beside it; a set of only "they" sentences
            reports them at the top).
        only_if_mixed: subset label keys reported only where their values split the prompts (BBQ's
            ``category``: a probe of several categories reports ``Religion/...``, ``Age/...`` beside
            its top level, the summary; a one-category probe has no copy of its top level).
        neutral: the group that assumes neither side of the gap (``"not_specified"``, ``"unknown"``),
            or None. On its prompts, ``jsdp/lean`` = the JSD-P part on ``gap[1]`` minus the part on
            ``gap[0]``: where the mass that misses the neutral answer goes (> 0: to ``gap[1]``, the
            side a positive gap favours: "male" for gender, the stereotype-consistent group for BBQ).
    """

    name: str
    groups: tuple[str, ...]
    gap: tuple[str, str]
    subsets: tuple[str, ...] = ()
    separate: tuple[str, ...] = ()
    only_if_mixed: tuple[str, ...] = ()
    neutral: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "gap", tuple(self.gap))
        if len(self.groups) < 2 or len(set(self.groups)) != len(self.groups):
            raise ValueError(f"task {self.name!r}: groups must be at least 2 distinct names, got {self.groups}")
        if len(self.gap) != 2 or not set(self.gap) <= set(self.groups) or self.gap[0] == self.gap[1]:
            raise ValueError(f"task {self.name!r}: gap must name two different groups of {self.groups}, got {self.gap}")
        bad = [g for g in self.groups if "/" in g or not g]
        if bad:
            raise ValueError(f"task {self.name!r}: group names may not be empty or contain '/': {bad}")
        if self.neutral is not None and (self.neutral not in self.groups or self.neutral in self.gap):
            raise ValueError(
                f"task {self.name!r}: neutral must be a group of {self.groups} outside the gap {self.gap}, got {self.neutral!r}"
            )


#: The paper's task: the gender of an occupation; gap female - male.
GENDER_TASK = ProbeTask(
    name="gender",
    groups=("male", "female", "not_specified"),
    gap=("female", "male"),
    subsets=("stereotype", "pronoun"),
    separate=("they",),
    neutral="not_specified",
)

#: BBQ: the stereotype-consistent group, the inconsistent one, "unknown"; gap inconsistent - consistent
#: (positive: the model reads better when the answer fits the stereotype); subsets by context condition
#: and, for a probe of several categories, by category.
BBQ_TASK = ProbeTask(
    name="bbq",
    groups=("consistent", "inconsistent", "unknown"),
    gap=("inconsistent", "consistent"),
    subsets=("condition", "category"),
    only_if_mixed=("category",),
    neutral="unknown",
)

#: The tasks a history's keys are matched against (:func:`task_of_keys`).
KNOWN_TASKS: tuple[ProbeTask, ...] = (GENDER_TASK, BBQ_TASK)


def task_of_keys(keys: Collection[str], prefix: str = "") -> ProbeTask:
    """The known task whose every answer group has a ``<prefix>ar/<group>`` key among ``keys`` (the
    gender task, BBQ's); the gender task when none does (a history of 0.1.0 has only its keys)."""
    return next((t for t in KNOWN_TASKS if all(f"{prefix}ar/{g}" in keys for g in t.groups)), GENDER_TASK)
