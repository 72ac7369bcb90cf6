"""The grammar of a probe's metric keys, in one place: :class:`MetricKey`.

A key is ``[<scope>/...]<kind>/<group>[/<part>]``:

- ``kind``: one of :data:`METRIC_KINDS`: ``ar`` (Average Rank), ``jsdp`` (JSD-P), ``acc``
  (accuracy), ``n`` (prompt count), ``mwu_p`` / ``mwu_rbc`` (Mann-Whitney p and effect size);
- ``group``: an answer group of the task (``male``, ``female``, ``not_specified``), a gap
  (``gap``, ``abs_gap``, ``gap_ci_low``, ``gap_ci_high``), ``lean``, or, after ``mwu_p`` /
  ``mwu_rbc``, the metric compared (``jsdp``);
- ``part``: an option's part of the JSD-P (``jsdp/male/female``) or ``se`` (a standard error);
- ``scope``: what comes before the kind: a subset of the probe's sentences (``pro``, ``anti``),
  a probe's name in a suite (``religion``), or both (``gender/pro``).

The kind is the first segment that is a kind, so a probe may not be named after one
(:class:`~fairness_callback.probe.suite.ProbeSuite` refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["GAP_GROUPS", "METRIC_KINDS", "MetricKey"]

#: The first segment of a metric proper (what comes before it is the key's scope).
METRIC_KINDS: frozenset[str] = frozenset({"ar", "jsdp", "acc", "n", "mwu_p", "mwu_rbc"})
#: The groups that are a gap between two answer groups (with per-sentence values: the paired bootstrap).
GAP_GROUPS: tuple[str, ...] = ("gap", "abs_gap")


@dataclass(frozen=True)
class MetricKey:
    """One metric key, parsed (:meth:`parse`) or built, and written back with ``str()``."""

    kind: str
    group: str
    part: str | None = None
    scope: tuple[str, ...] = ()

    @classmethod
    def parse(cls, key: str) -> MetricKey:
        """The parts of ``key``; ValueError naming it when it is not a metric key."""
        found = cls.try_parse(key)
        if found is None:
            raise ValueError(
                f"{key!r} is not a probe metric key ([<probe or subset>/]<kind>/<group>[/<part>], kind one of "
                f"{', '.join(sorted(METRIC_KINDS))})"
            )
        return found

    @classmethod
    def try_parse(cls, key: str) -> MetricKey | None:
        """:meth:`parse`, or None for a key that is not a metric key (``step``, ``val_loss``, ...)."""
        segments = key.split("/")
        kind_at = next((i for i, segment in enumerate(segments) if segment in METRIC_KINDS), None)
        if kind_at is None or len(segments) - kind_at not in (2, 3) or not all(segments):
            return None
        rest = segments[kind_at + 1 :]
        return cls(segments[kind_at], rest[0], rest[1] if len(rest) == 2 else None, tuple(segments[:kind_at]))

    def __str__(self) -> str:
        return "/".join([*self.scope, self.kind, self.group, *([self.part] if self.part else [])])

    @property
    def prefix(self) -> str:
        """The scope as it is written before the kind: ``"religion/"``, ``"pro/"``, ``""``."""
        return "".join(f"{segment}/" for segment in self.scope)

    @property
    def is_gap(self) -> bool:
        """A gap between two answer groups of AR or JSD-P (``jsdp/gap``, ``pro/ar/abs_gap``)."""
        return self.kind in ("ar", "jsdp") and self.group in GAP_GROUPS and self.part is None

    def sibling(self, kind: str, group: str, part: str | None = None) -> MetricKey:
        """Another metric of the same scope: ``gender/jsdp/gap`` -> ``gender/acc/male``."""
        return replace(self, kind=kind, group=group, part=part)

    def without_scope(self, segments: int = 1) -> MetricKey:
        """The key with its first ``segments`` scope segments removed (a suite's probe name)."""
        return replace(self, scope=self.scope[segments:])
