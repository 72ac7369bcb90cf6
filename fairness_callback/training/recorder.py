"""The tracker's history lines: what a run start, a probe, a failed probe and a stop write
(the format is training/history.py's), written on rank 0 only, a failed write never raised.

:func:`probe_record` is the probe line the live tracker and the offline replay both write.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..probe import ProbeResult
from ..probe.distributed import is_rank_zero
from ..probe.faults import ProbeFailure, describe
from ..probe.growth import GapUnits
from .history import HistoryWriter
from .records import FailureRecord, ProbeRecord, Record, StopRecord
from .stopping import StopDecision, StopReason

__all__ = ["HistoryRecorder", "probe_record"]

log = logging.getLogger("fairness_callback")


def probe_record(
    step: int,
    result: ProbeResult,
    seconds: float,
    sudden: bool | Mapping[str, bool],
    extra: Mapping[str, Any] | None = None,
    units: Mapping[str, GapUnits] | None = None,
) -> ProbeRecord:
    """The history record of one probe (the live callbacks and the offline replay write the same).

    ``sudden``: the sudden-change flag of ``jsdp/gap``, or ``{gap key: flag}`` for several probes
    (written as ``<gap key>_sudden``). ``extra``: more values of the line (the held-out loss, the
    stop rule's numbers, a replay's checkpoint). ``units``: the per-sentence gap values, by key.
    """
    values: dict[str, Any] = dict(result.metrics)
    for key, flag in sudden.items() if isinstance(sudden, Mapping) else [("jsdp/gap", sudden)]:
        values[f"{key}_sudden"] = flag
    values.update(extra or {})
    return ProbeRecord(
        step=step,
        time=time.time(),
        probe_seconds=seconds,
        prefix_sharing=result.info.get("prefix_sharing"),
        values=values,
        by_seed=result.by_seed,
        units={key: value.encode() for key, value in units.items()} if units is not None else None,
    )


class HistoryRecorder:
    """Writes one run's lines to ``path`` (None: no history). Only rank 0 opens the file; on the
    other ranks every method does nothing. A write that fails (a full disk) is logged and the line
    kept for the next write: the history may lag, training never ends for it."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        self._writer: HistoryWriter | None = None

    def open(self, run_id: str, info: Mapping[str, Any], resumed: bool) -> str | None:
        """Write the run-start line (rank 0); returns what went wrong when the file cannot be written, else None."""
        if self.path is None or not is_rank_zero():
            return None
        writer = HistoryWriter(self.path, run_id=run_id)
        try:
            writer.start_run(dict(info), resumed=resumed)
        except OSError as error:
            return (
                f"FairnessTracker: history_path {self.path} cannot be written ({error}); "
                "give a writable history_path, or history_path=None for no history"
            )
        self._writer = writer
        return None

    @property
    def writing(self) -> bool:
        """Whether lines are written (rank 0 of a run with a history, after :meth:`open`)."""
        return self._writer is not None

    def probe(
        self,
        step: int,
        result: ProbeResult,
        seconds: float,
        sudden: Mapping[str, bool],
        units: Mapping[str, GapUnits],
        loss: tuple[str, float | None],
        decision: StopDecision | None,
        has_rule: bool,
    ) -> None:
        """A probe line: its metrics, sudden-change flags, per-sentence gap values, the held-out
        ``loss`` (key, value) and, with a stop rule (``has_rule``), the rule's numbers."""
        if self._writer is None:
            return
        extra: dict[str, Any] = {loss[0]: loss[1]}
        if has_rule:
            extra["stopping/best"] = decision.best if decision is not None else None
            extra["stopping/best_step"] = decision.best_step if decision is not None else None
            extra["stopping/wait"] = decision.wait if decision is not None else None
            extra["stopping/statistic"] = decision.statistic if decision is not None else None
            extra["stopping/decided"] = decision is not None
        flags = {k: v for k, v in sudden.items() if k in result.metrics}
        self._append(probe_record(step, result, seconds, flags, extra, units))

    def failure(self, step: int, failure: ProbeFailure) -> None:
        """A ``probe_failed`` line: which ranks failed and why."""
        first = next(iter(failure.ranks.values()))
        self._append(
            FailureRecord(
                step=step,
                time=time.time(),
                probe=failure.probe,
                ranks={str(r): text for r, text in failure.ranks.items()},
                error_type=failure.error_type,
                message=first.partition(": ")[2] or first,
            )
        )

    def stop(
        self,
        step: int,
        reason: StopReason,
        message: str,
        monitor: str | None,
        rule: str | None,
        decision: StopDecision | None,
        other_gaps: dict[str, dict[str, float | None]] | None,
    ) -> None:
        """A stop line: the reason, the message, the rule's fairest step and value, other probes' gaps."""
        self._append(
            StopRecord(
                step=step,
                reason=reason.value,
                message=message,
                time=time.time(),
                monitor=monitor,
                rule=rule,
                best_step=decision.best_step if decision is not None else None,
                best_value=decision.best if decision is not None else None,
                statistic=decision.statistic if decision is not None else None,
                other_gaps=other_gaps,
            )
        )

    def _append(self, record: Record) -> None:
        if self._writer is None:
            return
        try:
            self._writer.append(record)
        except OSError as error:
            log.error(
                "fairness history %s could not be written (%s); %d line(s) kept to write later; training goes on",
                self._writer.path,
                describe(error),
                len(self._writer.pending),
            )
