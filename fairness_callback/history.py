"""The probe history: one JSON object per line, appended and flushed as it is produced.

A line is either a probe (``"event": "probe"``: ``step``, ``time`` (Unix seconds),
``probe_seconds``, every metric under its own key, ``jsdp/gap_sudden`` (a sudden-change flag),
``by_seed`` (per-seed AR / JSD-P lists) and the held-out loss when known) or a stop
(``"event": "stop"``: ``step``, ``reason``, ``message``, ``best_step``, ``best_value``). The live
callbacks and the offline replay write the same format.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

HISTORY_FILENAME = "fairness_history.jsonl"


def _plain(value: Any) -> Any:
    # JSON has no NaN; null keeps the line readable by every JSON parser.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class HistoryWriter:
    """Appends records to a JSONL file; every line is flushed and fsynced before ``append`` returns."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._checked = False

    def _drop_torn_line(self) -> None:
        """A run that crashed mid-write leaves a partial last line; cut it before appending after it."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._checked:
            self._drop_torn_line()
            self._checked = True
        line = json.dumps(_plain(record), allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def read_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a history file, in order; a torn last line (a crash mid-write) is skipped.

    Non-finite metrics are stored as null and come back as None. Raises ValueError naming the
    file and line for a malformed line anywhere else.
    """
    return list(iter_history(path))


def iter_history(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                return
            raise ValueError(f"{path}, line {number}: not a JSON object: {error}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        yield record
