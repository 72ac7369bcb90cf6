"""What would a stop rule have done? Replay any registered stop rule over a finished run.

A rule is a function of the probe stream and the held-out losses, both in the history: each probe
line has the metrics, the held-out loss known at that probe and (for a rule that
``needs_units``, e.g. ``test=bootstrap``) the monitored gap's per-sentence units.
``fairness-callback report HISTORY --stop-rule "patience=3,min_delta=0.01" --stop-rule
"rule=cusum,threshold=4"`` prints, per rule, where it would have stopped, why, and the trade-off
there (texts: :func:`~fairness_callback.training.stopping.parse_stop_rule`).

The held-out losses are those the probe lines recorded (the latest evaluation before each probe);
evaluations between probes that the history does not keep cannot count toward the best loss, so a
rule's ``loss_tolerance`` sees the loss at probe steps only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._numbers import format_number
from ..probe.growth import GapUnits
from ..probe.keys import MetricKey
from ..probe.tasks import task_of_keys
from ..training.history import LOSS_KEYS
from ..training.stopping import StopRule, parse_stop_rule

__all__ = [
    "replay_rule",
    "RuleOutcome",
]


@dataclass(frozen=True)
class RuleOutcome:
    """Where a replayed rule stops (``stop_step`` None: never) and the trade-off there."""

    rule: str
    stop_step: int | None
    reason: str
    message: str
    best_step: int | None
    gap_at_best: float | None
    gap_at_stop: float | None
    loss_at_stop: float | None
    best_loss: float | None

    def describe(self) -> str:
        """One line: where it stops, why, the held-out loss there against the best, the fairest step."""

        def show(value: float | None, fmt: str = "+.4g") -> str:
            return format_number(value, fmt)

        fairest = f"fairest step {self.best_step} ({show(self.gap_at_best)})"
        if self.stop_step is None:
            return f"rule {self.rule!r}: never stops; {fairest}"
        loss = ""
        if self.loss_at_stop is not None and self.best_loss:
            loss = (
                f"; held-out loss {show(self.loss_at_stop, '.4g')} (best {show(self.best_loss, '.4g')}, "
                f"{100 * (self.loss_at_stop / self.best_loss - 1):+.1f}%)"
            )
        return (
            f"rule {self.rule!r}: stops at step {self.stop_step} ({self.reason}), gap {show(self.gap_at_stop)}{loss}; "
            f"{fairest}: {self.message}"
        )


def replay_rule(probes: Sequence[dict[str, Any]], text: str, default_monitor: str = "jsdp/gap") -> RuleOutcome:
    """Feed one run's probe lines (in step order) to the rule of ``text``; where would it stop?"""
    rule: StopRule = parse_stop_rule(text, default_monitor)
    keys = {key for record in probes for key in record}
    loss_key = rule.loss_key or next((k for k in LOSS_KEYS if k in keys), None)
    monitor = MetricKey.try_parse(rule.monitor)
    prefix = monitor.prefix if monitor is not None else ""
    try:
        rule.check(keys, task_of_keys(keys, prefix).gap, loss_key)
    except ValueError as error:
        raise ValueError(f"--stop-rule {text!r}: {error}") from None
    losses: list[float] = []
    best_step: int | None = None
    for record in probes:
        loss = record.get(loss_key) if loss_key else None
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            rule.update_loss(float(loss))
            losses.append(float(loss))
        metrics = {k: (math.nan if v is None else v) for k, v in record.items() if isinstance(v, (int, float)) or v is None}
        units = None
        if rule.needs_units:
            encoded = (record.get("units") or {}).get(rule.monitor)
            if encoded is None:
                raise ValueError(
                    f"--stop-rule {text!r}: the probe line of step {record.get('step')} keeps no per-sentence "
                    f"values of {rule.monitor!r} (histories of versions that did not keep them have none: replay the checkpoints again)"
                )
            units = GapUnits.decode(encoded)
        decision = rule.step(int(record["step"]), metrics, units=units)
        best_step = decision.best_step
        if decision.should_stop:
            return _outcome(text, probes, rule.monitor, record, decision.reason.value, decision.message, losses, best_step)
    return _outcome(text, probes, rule.monitor, None, "not_stopped", "", losses, best_step)


def _outcome(
    text: str,
    probes: Sequence[dict[str, Any]],
    monitor: str,
    stop: dict[str, Any] | None,
    reason: str,
    message: str,
    losses: list[float],
    best_step: int | None,
) -> RuleOutcome:
    by_step = {int(r["step"]): r for r in probes}
    best = by_step.get(best_step) if best_step is not None else None
    return RuleOutcome(
        rule=text,
        stop_step=int(stop["step"]) if stop is not None else None,
        reason=reason,
        message=message,
        best_step=best_step,
        gap_at_best=best.get(monitor) if best else None,
        gap_at_stop=stop.get(monitor) if stop else None,
        loss_at_stop=losses[-1] if stop is not None and losses else None,
        best_loss=min(losses) if losses else None,
    )
