"""The probe history: one JSON object per line, appended and flushed as it is produced.

Each line is one record of training/records.py: a run start, a probe, a failed probe or a stop
(:class:`~fairness_callback.training.records.RunStartRecord`, ``ProbeRecord``, ``FailureRecord``,
``StopRecord``: the one definition of what each line holds). :class:`HistoryWriter` is the one
writer (it appends records), :func:`iter_records` the one reader (lines back to records, a wrong
line named by file and line); :func:`read_history` gives the same lines as plain dicts, for
tables and pandas. Every line carries the ``run_id`` of the run that wrote it, so one file can hold
several runs (two ``fit`` calls in one folder, a resumed run, a replay) without mixing them
(:func:`history_runs` lists them and :func:`select_run` picks one), and the ``schema`` of its format
(:data:`SCHEMA_VERSION`). The live callbacks and the offline replay write the same format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import SCHEMA_VERSION, Record, RunStartRecord, parse_record

__all__ = [
    "HISTORY_FILENAME",
    "LOSS_KEYS",
    "history_runs",
    "is_probe",
    "is_run_start",
    "is_stop",
    "HistoryWriter",
    "iter_history",
    "iter_records",
    "latest_run_id",
    "new_run_id",
    "read_history",
    "read_records",
    "read_run",
    "RUN_START_KEYS",
    "SCHEMA_VERSION",
    "RunSummary",
    "select_run",
    "split_runs",
    "without_superseded",
]

log = logging.getLogger("fairness_callback")

HISTORY_FILENAME = "fairness_history.jsonl"
#: The held-out loss keys a probe line may carry (the HF Trainer's, Lightning's), in the order a
#: reader looks for them when no key is given.
LOSS_KEYS: tuple[str, ...] = ("eval_loss", "val_loss")
#: Keys of a run-start line that the writer sets (its ``info`` may not).
RUN_START_KEYS = RunStartRecord.RESERVED


def new_run_id() -> str:
    """A fresh run id, ``YYYYMMDD-HHMMSS-xxxxxx``: the UTC start time and 6 random hex digits.

    Ids of runs started in different seconds sort by start time; the random part keeps two runs
    started in the same second apart.
    """
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time())) + "-" + secrets.token_hex(3)


class HistoryWriter:
    """Appends the records of one run to a JSONL file; every line carries ``run_id`` and is flushed
    and fsynced before ``append`` returns.

    ``run_id`` None starts a new run (:func:`new_run_id`); give the id of a run already in the file
    to continue it (a resumed training run, a resumed replay). Call :meth:`start_run` once per
    (re)start before the first probe line, so the file says where each run and each resume began.

    A write that fails (a full disk, a lost mount) raises ``OSError`` and leaves the file as it
    was: the line, and any line still pending from an earlier failure, is kept (at most
    :attr:`MAX_PENDING` lines) and written first by the next :meth:`append` that succeeds.
    """

    #: Lines kept in memory while the file cannot be written; older ones are dropped past this.
    MAX_PENDING = 10_000

    def __init__(self, path: str | os.PathLike, run_id: str | None = None) -> None:
        self.path = Path(path)
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
        self.run_id: str = run_id if run_id is not None else new_run_id()
        self._checked = False
        #: Lines not written yet because the file could not be written (see the class docstring).
        self.pending: list[str] = []

    def _repair_last_line(self) -> None:
        """Make the file end at a line boundary before appending to it.

        A last line without its newline that parses (a writer stopped between the line and its
        newline) keeps every byte and gets the newline; one that does not parse (a crash
        mid-write) is cut, with a warning that says how many bytes went.
        """
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            log.warning(
                "%s: its last line (%d bytes) was cut short by an earlier crash and does not parse; removed before appending",
                self.path,
                len(data) - cut,
            )
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)
            return
        with open(self.path, "ab") as handle:
            handle.write(b"\n")

    def append(self, record: Record) -> None:
        """Append ``record`` (a record of training/records.py) as one line, with this writer's
        ``run_id`` (it replaces the record's) and :data:`SCHEMA_VERSION` as ``schema``.

        Raises ``OSError`` if the file cannot be written; the line is kept and written by the next
        ``append`` that can (see the class docstring).
        """
        if not hasattr(record, "to_line"):
            raise TypeError(
                f"HistoryWriter.append takes a record of fairness_callback.training.records "
                f"(RunStartRecord, ProbeRecord, FailureRecord, StopRecord), got {type(record).__name__}"
            )
        line = {**record.to_line(), "run_id": self.run_id, "schema": SCHEMA_VERSION}
        self.pending.append(json.dumps(line, allow_nan=False))
        if len(self.pending) > self.MAX_PENDING:
            log.error("%s: still not writable; its oldest unwritten line is dropped", self.path)
            del self.pending[0]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._checked:
            self._repair_last_line()
            self._checked = True
        data = "".join(line + "\n" for line in self.pending).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # leave the file as it was: every line stays pending
                    os.ftruncate(fd, size)
                self._checked = False  # if the cut failed too, the next append repairs the torn line
                raise
        finally:
            os.close(fd)
        self.pending.clear()

    def start_run(self, info: dict[str, Any] | None = None, resumed: bool = False) -> RunStartRecord:
        """Append a run-start line and return its record.

        ``info`` describes the run (e.g. ``framework``, ``probe_set``, ``num_prompts``,
        ``every_n_steps``); it may not set the keys of :data:`RUN_START_KEYS`. ``resumed``: this
        start continues a run already in the file (same ``run_id``).
        """
        record = RunStartRecord(time=time.time(), resumed=bool(resumed), info=dict(info or {}), run_id=self.run_id)
        self.append(record)
        return record


def read_history(path: str | os.PathLike, strict: bool = True) -> list[dict[str, Any]]:
    """All lines of a history file (every run), in order, as plain dicts (each a record's
    ``to_line()``: a line of an old file comes back with its ``event`` and ``schema``); a torn
    last line (a crash mid-write) is skipped.

    Non-finite metrics are stored as null and come back as None. A malformed line anywhere else (not
    JSON, or a field of the wrong type): with ``strict`` a ValueError naming the file and line;
    without, a warning naming the file and line, and the rest is read. A line of a newer
    :data:`SCHEMA_VERSION` is a ValueError naming the file and line either way. Use
    :func:`select_run` (or :func:`read_run`) for the lines of one run, :func:`read_records` for typed records.
    """
    return [record.to_line() for record in iter_records(path, strict)]


def read_records(path: str | os.PathLike, strict: bool = True) -> list[Record]:
    """The lines of :func:`read_history` as records (training/records.py)."""
    return list(iter_records(path, strict))


def iter_history(path: str | os.PathLike, strict: bool = True) -> Iterator[dict[str, Any]]:
    """The lines of :func:`read_history`, one at a time."""
    return (record.to_line() for record in iter_records(path, strict))


def iter_records(path: str | os.PathLike, strict: bool = True) -> Iterator[Record]:
    """The one reader: each line of a history file as its record (see :func:`read_history` for
    torn, malformed and newer lines)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                return
            problem = f"not a JSON object: {error}"
        else:
            if isinstance(parsed, dict):
                version = parsed.get("schema", SCHEMA_VERSION)
                if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
                    parse_record(parsed, where)  # raises, naming the line: never skipped
                try:
                    yield parse_record(parsed, where)
                    continue
                except ValueError as error:
                    problem = str(error).removeprefix(f"{where}: ")
            else:
                problem = f"expected a JSON object, got {type(parsed).__name__}"
        if strict:
            raise ValueError(f"{path}, line {number}: {problem}")
        log.warning("%s, line %d: skipped, %s", path, number, problem)


def without_superseded(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run's records as its last life saw them: a resumed start at step S (its run-start line's
    ``step``) supersedes the earlier probe and failure lines past S and the stop lines at or past S
    (training went on from S, so an earlier stop there no longer describes the run). Lines of a
    run-start without ``step`` supersede nothing.
    """
    kept: list[dict[str, Any]] = []
    for record in records:
        resumed_at = _step(record) if is_run_start(record) and record.get("resumed") else None
        if resumed_at is not None:
            kept = [r for r in kept if not _superseded(r, resumed_at)]
        kept.append(record)
    return kept


def _superseded(record: dict[str, Any], resumed_at: int) -> bool:
    step = _step(record)
    if step is None:
        return False
    event = record.get("event", "probe")
    return (event == "stop" and step >= resumed_at) or (event in ("probe", "probe_failed") and step > resumed_at)


# -- runs ----------------------------------------------------------------------------------------
def is_probe(record: dict[str, Any]) -> bool:
    """A probe line (a line without ``event`` is one too: the first histories had no other kind)."""
    return record.get("event", "probe") == "probe"


def is_stop(record: dict[str, Any]) -> bool:
    """A stop line."""
    return record.get("event") == "stop"


def is_run_start(record: dict[str, Any]) -> bool:
    """A run-start line."""
    return record.get("event") == "run_start"


def _step(record: dict[str, Any]) -> int | None:
    step = record.get("step")
    return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None


def split_runs(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of each run, keyed by run id, runs in order of first appearance, records in file order.

    Every line the writer writes carries its run's ``run_id``; a line without one belongs to no run
    and is left out.
    """
    runs: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        run_id = record.get("run_id")
        if isinstance(run_id, str) and run_id:
            runs.setdefault(run_id, []).append(record)
    return runs


@dataclass(frozen=True)
class RunSummary:
    """One run of a history file: its id, probes, step range, start time and how often it was resumed.

    ``start_time`` is the ``time`` of its first run-start line (else of its first timed line; None
    if none has one). ``resumed`` counts its run-start lines with ``resumed: true``. ``info`` is its
    first run-start line without the keys the writer sets (empty if it has none).
    """

    run_id: str
    num_probes: int
    first_step: int | None
    last_step: int | None
    start_time: float | None
    resumed: int
    num_records: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> str:
        """``"0-12"``, ``"4"``, or ``"no probes"``."""
        if self.first_step is None:
            return "no probes"
        return str(self.first_step) if self.first_step == self.last_step else f"{self.first_step}-{self.last_step}"

    def describe(self) -> str:
        """``"<id> (steps 0-12, 4 probes)"``, as error messages list runs."""
        steps = "no probes" if self.first_step is None else f"steps {self.steps}, {self.num_probes} probe(s)"
        return f"{self.run_id} ({steps}{', resumed ' + str(self.resumed) + 'x' if self.resumed else ''})"


def _summary(run_id: str, records: Sequence[dict[str, Any]]) -> RunSummary:
    steps = sorted({s for r in records if is_probe(r) and (s := _step(r)) is not None})
    starts = [r for r in records if is_run_start(r)]
    timed = [r["time"] for r in (starts or records) if isinstance(r.get("time"), (int, float))]
    info = {k: v for k, v in starts[0].items() if k not in RUN_START_KEYS} if starts else {}
    return RunSummary(
        run_id=run_id,
        num_probes=len(steps),
        first_step=steps[0] if steps else None,
        last_step=steps[-1] if steps else None,
        start_time=float(timed[0]) if timed else None,
        resumed=sum(1 for r in starts if r.get("resumed")),
        num_records=len(records),
        info=info,
    )


def history_runs(records: Sequence[dict[str, Any]]) -> list[RunSummary]:
    """A :class:`RunSummary` per run of ``records`` (from :func:`read_history`), in order of first appearance.

    ``num_probes`` counts distinct probed steps (a resumed run's repeat of a step counts once).
    """
    return [_summary(run_id, run) for run_id, run in split_runs(records).items()]


def latest_run_id(records: Sequence[dict[str, Any]]) -> str | None:
    """The run the last record belongs to (the run written most recently), or None for no records."""
    return next((r["run_id"] for r in reversed(records) if isinstance(r.get("run_id"), str) and r["run_id"]), None)


def select_run(records: Sequence[dict[str, Any]], run_id: str | None = None, source: str = "history") -> list[dict[str, Any]]:
    """The records of one run, in file order: ``run_id``'s, or the latest run's (the run of the last record).

    A resumed run's lines past its resume step are left out (:func:`without_superseded`).
    No records: an empty list (with ``run_id`` None). Raises ValueError naming ``source`` (e.g. the
    file) and listing the runs with their step ranges when ``run_id`` is not in ``records``.
    """
    runs = split_runs(records)
    if run_id is None:
        latest = latest_run_id(records)  # None exactly when no record has a run id: no runs
        return without_superseded(runs[latest]) if latest is not None else []
    if run_id not in runs:
        listed = "; ".join(_summary(i, r).describe() for i, r in runs.items()) or "none (it is empty)"
        raise ValueError(f"{source}: no run {run_id!r}; its runs: {listed}")
    return without_superseded(runs[run_id])


def read_run(path: str | os.PathLike, run_id: str | None = None, strict: bool = True) -> list[dict[str, Any]]:
    """The records of one run of a history file (the latest by default); see :func:`select_run`."""
    return select_run(read_history(path, strict), run_id, source=str(path))
