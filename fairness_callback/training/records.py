"""The four kinds of history line as record classes: the one definition of what each line holds.

A history file (training/history.py) is JSON lines; each line is one of these records, told apart by
its ``event``: :class:`RunStartRecord` (``"run_start"``), :class:`ProbeRecord` (``"probe"``; a line
without ``event`` is one too, as the first histories wrote them), :class:`FailureRecord`
(``"probe_failed"``) and :class:`StopRecord` (``"stop"``). :meth:`to_line` gives the JSON object
the writer appends; :func:`parse_record` (the reader's one parser) turns a line back into its
record, checking the types of the fields every reader relies on and naming the line that is wrong.

Every line carries the ``run_id`` of the run that wrote it and the ``schema`` of its format
(:data:`SCHEMA_VERSION`; a line without one, written before it existed, is version 1). A new
version only adds keys; a reader refuses a line of a version newer than its own.

A new field of a line is a field here, with a default (so older lines still read), written by
:meth:`to_line` and read by ``from_line``; the writers (training/recorder.py, offline/replay.py)
then set it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeAlias

__all__ = [
    "FailureRecord",
    "ProbeRecord",
    "Record",
    "RunStartRecord",
    "SCHEMA_VERSION",
    "StopRecord",
    "parse_record",
]

#: The version of the line format this package writes (every line's ``schema``).
SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    # JSON has no NaN; null keeps the line readable by every JSON parser.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _step(line: Mapping[str, Any], where: str, key: str = "step", required: bool = True) -> int | None:
    step = line.get(key)
    if step is None and not required:
        return None
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not float(step).is_integer():
        raise ValueError(f"{where}: {key!r} must be an integer, got {step!r}")
    return int(step)


def _number(line: Mapping[str, Any], key: str, where: str) -> float | None:
    value = line.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {key!r} must be a number or null, got {value!r}")
    return float(value)


def _text(line: Mapping[str, Any], key: str, where: str) -> str | None:
    value = line.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string or null, got {value!r}")
    return value


def _object(line: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = line.get(key)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{where}: {key!r} must be an object or null, got {type(value).__name__}")
    return value


def _prefix_sharing(line: Mapping[str, Any], where: str) -> str | dict[str, str] | None:
    value = line.get("prefix_sharing")
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return _text(line, "prefix_sharing", where)


def _schema(line: Mapping[str, Any]) -> int:
    version = line.get("schema", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


@dataclass(frozen=True)
class _Line:
    """What every record has: its run and its format version."""

    EVENT: ClassVar[str]
    #: The run that wrote the line (None: a line of a history older than run ids).
    run_id: str | None = field(default=None, kw_only=True)
    schema: int = field(default=SCHEMA_VERSION, kw_only=True)

    def _tail(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "schema": self.schema}

    def to_line(self) -> dict[str, Any]:
        """The JSON object the history holds for this record (NaN as null): its ``event`` and every
        field, in declaration order, then ``run_id`` and ``schema``."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("run_id", "schema")}
        return _plain({"event": self.EVENT, **body, **self._tail()})


@dataclass(frozen=True)
class RunStartRecord(_Line):
    """A run (or a resume of it) began: ``resumed`` says which; ``step`` is where a live run started
    or resumed (None for a replay); ``info`` what the writer says about the run (``framework``,
    ``probe_set``, ``num_prompts``, ``every_n_steps``, a replay's ``checkpoints`` source, ...)."""

    EVENT: ClassVar[str] = "run_start"
    time: float | None = None
    resumed: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    #: Keys the record sets itself; ``info`` may not use them.
    RESERVED: ClassVar[tuple[str, ...]] = ("event", "run_id", "time", "resumed", "schema")

    def __post_init__(self) -> None:
        clash = sorted(set(self.info) & set(self.RESERVED))
        if clash:
            raise ValueError(f"a run-start line's info may not set {', '.join(clash)}: the writer sets them")

    @property
    def step(self) -> int | None:
        step = self.info.get("step")
        return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None

    def to_line(self) -> dict[str, Any]:
        return _plain({"event": self.EVENT, "time": self.time, "resumed": self.resumed, **self.info, **self._tail()})

    @classmethod
    def from_line(cls, line: Mapping[str, Any], where: str = "history") -> RunStartRecord:
        _step(line, where, required=False)
        info = {k: v for k, v in line.items() if k not in cls.RESERVED}
        return cls(
            time=_number(line, "time", where),
            resumed=bool(line.get("resumed")),
            info=info,
            run_id=_text(line, "run_id", where),
            schema=_schema(line),
        )


@dataclass(frozen=True)
class ProbeRecord(_Line):
    """One probe at ``step``: its ``values`` (every metric under its own key, e.g. ``jsdp/gap``,
    ``religion/ar/consistent``; the sudden-change flags ``<gap key>_sudden``; the held-out loss
    under its key, ``eval_loss`` / ``val_loss``; with a stop rule ``stopping/best``,
    ``stopping/best_step``, ``stopping/wait``, ``stopping/statistic``, ``stopping/decided``; a
    replay's ``checkpoint`` and ``load_seconds``, and with ``--lm-eval-task`` ``lm_eval/<task>/<metric>``,
    ``lm_eval/seconds`` or ``lm_eval/error``), ``by_seed`` (per-seed AR / JSD-P lists by metric
    key), ``units`` (per-sentence gap values by monitored key, encoded) and how long it took."""

    EVENT: ClassVar[str] = "probe"
    step: int
    time: float | None = None
    probe_seconds: float | None = None
    #: The scoring path (``"tree"``, ``"cache"``, ``"off"``), or one per probe of a suite.
    prefix_sharing: str | dict[str, str] | None = None
    values: dict[str, Any] = field(default_factory=dict)
    by_seed: dict[str, Any] | None = None
    units: dict[str, Any] | None = None
    _FIELDS: ClassVar[tuple[str, ...]] = ("event", "step", "time", "probe_seconds", "prefix_sharing", "by_seed", "units")

    def __post_init__(self) -> None:
        clash = sorted(set(self.values) & {*self._FIELDS, "run_id", "schema"})
        if clash:
            raise ValueError(f"a probe line's values may not use the keys {clash}: they are its fields")

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key`` (a metric, a flag, the loss), else ``default``."""
        return self.values.get(key, default)

    def to_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "event": self.EVENT,
            "step": self.step,
            "time": self.time,
            "probe_seconds": self.probe_seconds,
            "prefix_sharing": self.prefix_sharing,
            **self.values,
        }
        if self.by_seed is not None:
            line["by_seed"] = self.by_seed
        if self.units is not None:
            line["units"] = self.units
        return _plain({**line, **self._tail()})

    @classmethod
    def from_line(cls, line: Mapping[str, Any], where: str = "history") -> ProbeRecord:
        values = {k: v for k, v in line.items() if k not in cls._FIELDS and k not in ("run_id", "schema")}
        return cls(
            step=_step(line, where),  # type: ignore[arg-type]  # required: never None
            time=_number(line, "time", where),
            probe_seconds=_number(line, "probe_seconds", where),
            prefix_sharing=_prefix_sharing(line, where),
            values=values,
            by_seed=_object(line, "by_seed", where),
            units=_object(line, "units", where),
            run_id=_text(line, "run_id", where),
            schema=_schema(line),
        )


@dataclass(frozen=True)
class FailureRecord(_Line):
    """A probe at ``step`` failed: ``probe`` (its name in a suite, else None), ``ranks`` (``{rank:
    "Type: first line"}``), the first failure's ``error_type`` and ``message``."""

    EVENT: ClassVar[str] = "probe_failed"
    step: int
    time: float | None = None
    probe: str | None = None
    ranks: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    message: str | None = None

    @classmethod
    def from_line(cls, line: Mapping[str, Any], where: str = "history") -> FailureRecord:
        return cls(
            step=_step(line, where),  # type: ignore[arg-type]  # required: never None
            time=_number(line, "time", where),
            probe=_text(line, "probe", where),
            ranks={str(k): str(v) for k, v in (_object(line, "ranks", where) or {}).items()},
            error_type=_text(line, "error_type", where),
            message=_text(line, "message", where),
            run_id=_text(line, "run_id", where),
            schema=_schema(line),
        )


@dataclass(frozen=True)
class StopRecord(_Line):
    """Training was told to stop at ``step``: the ``reason`` (a :class:`StopReason` value), the
    ``message``, the ``monitor`` and ``rule``, the rule's fairest step and value (``best_step``,
    ``best_value``), its ``statistic`` and the other probes' gaps (``other_gaps``)."""

    EVENT: ClassVar[str] = "stop"
    step: int
    reason: str
    message: str = ""
    time: float | None = None
    monitor: str | None = None
    rule: str | None = None
    best_step: int | None = None
    best_value: float | None = None
    statistic: float | None = None
    other_gaps: dict[str, dict[str, float | None]] | None = None

    @classmethod
    def from_line(cls, line: Mapping[str, Any], where: str = "history") -> StopRecord:
        reason = _text(line, "reason", where)
        if reason is None:
            raise ValueError(f"{where}: a stop line needs its 'reason'")
        return cls(
            step=_step(line, where),  # type: ignore[arg-type]  # required: never None
            reason=reason,
            message=_text(line, "message", where) or "",
            time=_number(line, "time", where),
            monitor=_text(line, "monitor", where),
            rule=_text(line, "rule", where),
            best_step=_step(line, where, "best_step", required=False),
            best_value=_number(line, "best_value", where),
            statistic=_number(line, "statistic", where),
            other_gaps=_object(line, "other_gaps", where),
            run_id=_text(line, "run_id", where),
            schema=_schema(line),
        )


Record: TypeAlias = RunStartRecord | ProbeRecord | FailureRecord | StopRecord
_KINDS: dict[str, type[RunStartRecord] | type[ProbeRecord] | type[FailureRecord] | type[StopRecord]] = {
    kind.EVENT: kind for kind in (RunStartRecord, ProbeRecord, FailureRecord, StopRecord)
}


def parse_record(line: Mapping[str, Any], where: str = "history") -> Record:
    """The record a history line holds (a line without ``event`` is a probe line, as the first
    histories wrote them). ValueError naming ``where`` (e.g. ``"h.jsonl, line 3"``) for a line of a
    newer schema, an unknown event, or a field of the wrong type."""
    version = line.get("schema", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ValueError(
            f"{where}: written in history schema {version} by a newer fairness-callback; "
            f"this one reads schema {SCHEMA_VERSION}: pip install -U fairness-callback"
        )
    event = line.get("event", ProbeRecord.EVENT)
    kind = _KINDS.get(event) if isinstance(event, str) else None
    if kind is None:
        raise ValueError(f"{where}: unknown event {event!r}; known: {', '.join(_KINDS)}")
    return kind.from_line(line, where)
