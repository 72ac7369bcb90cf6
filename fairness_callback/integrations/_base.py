"""What the Hugging Face and the Lightning callbacks share: :class:`TrackerAdapter`.

Framework-free (it imports neither ``transformers`` nor ``lightning``): each adapter subclasses it
beside its framework's callback class and only translates that framework's events into
:class:`~fairness_callback.training.tracker.FairnessTracker` calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from ..probe import FairnessProbe
from ..training.alerts import Alerts
from ..training.history import HISTORY_FILENAME
from ..training.sinks import write_layout
from ..training.stopping import StopReason, StopRule
from ..training.tracker import FairnessTracker

__all__ = ["TrackerAdapter"]


class TrackerAdapter:
    """The part of a training callback that holds its :class:`~fairness_callback.FairnessTracker`.

    Args:
        every_n_steps, probe, tokenizer, early_stopping, probe_at_start, history_path, on_error,
            log_all_metrics, probe_budget, probes, alerts: passed to the tracker; each is documented
            once, in :class:`~fairness_callback.FairnessTracker` (``alerts``: an
            :class:`~fairness_callback.Alerts`). What an adapter sets differently:
            ``log`` (metrics go through the framework's own loggers), ``loss_key`` (the
            framework's held-out loss: :attr:`loss_key`), the default ``history_path`` (the run's
            output folder) and the default tokenizer (the framework's); each adapter's docstring
            says which. ``on_error="raise"`` ends training with the error.
        name: tells this callback apart from another of its class in the same trainer (e.g. two
            probe sets at two intervals): it keys the callback's state in checkpoints
            (:attr:`state_key`) and names its default history file ``fairness_history-<name>.jsonl``.
            Without it the key is made of ``every_n_steps`` and the probes' names. Two callbacks
            with one key, or one history file, in a trainer are refused before training starts.

    Attributes:
        tracker: the :class:`~fairness_callback.FairnessTracker` this callback drives.
        last_metrics: the latest probe's metrics (same keys as ``ProbeResult.metrics``), identical on every rank.
        stopped_reason: a :class:`~fairness_callback.StopReason` once fairness early stopping fired, else None.
        stop_message: the stop line once fairness early stopping fired, else None.
        history_path: the history file of the run (None before the framework gave its folder, or no history).
    """

    #: What drives the tracker, for the run-start line of the history.
    framework: str = "custom"
    #: The framework's held-out loss, the tracker's ``loss_key``.
    loss_key: str = "val_loss"
    #: Built from a configuration file rather than by the user's code (it gives way to one that was).
    added_by_config: bool = False

    def __init__(
        self,
        every_n_steps: int = 500,
        probe: FairnessProbe | None = None,
        tokenizer: Any = None,
        early_stopping: StopRule | None = None,
        probe_at_start: bool = True,
        history_path: str | os.PathLike | None = None,
        on_error: Literal["warn", "raise"] = "warn",
        log_all_metrics: bool = False,
        probe_budget: float | None = None,
        probes: Mapping[str, FairnessProbe] | None = None,
        name: str | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        super().__init__()
        if name is not None and (not isinstance(name, str) or not name or "/" in name or name != name.strip()):
            raise ValueError(f"name must be a non-empty string without '/' or surrounding spaces, got {name!r}")
        self.name = name
        self._key_fields: dict[str, Any] = (
            {"name": name} if name else {"every_n_steps": every_n_steps, **({"probes": sorted(probes)} if probes else {})}
        )
        self.tracker = FairnessTracker(
            tokenizer=tokenizer,
            every_n_steps=every_n_steps,
            probe=probe,
            early_stopping=early_stopping,
            probe_at_start=probe_at_start,
            history_path=history_path,
            on_error=on_error,
            log_all_metrics=log_all_metrics,
            probe_budget=probe_budget,
            probes=probes,
            loss_key=self.loss_key,
            alerts=alerts,
        )
        self.tracker.framework = self.framework
        self._history_path = Path(history_path) if history_path is not None else None
        self._layout_written = False

    @property
    def last_metrics(self) -> dict[str, float] | None:
        return self.tracker.last_metrics

    @property
    def stopped_reason(self) -> StopReason | None:
        return self.tracker.stopped_reason

    @property
    def stop_message(self) -> str | None:
        return self.tracker.stop_message

    @property
    def history_path(self) -> Path | None:
        return self.tracker.history_path

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint: its class and ``name`` (else its interval
        and probes), as Lightning's ``Callback._generate_state_key`` writes it."""
        return f"{type(self).__qualname__}{self._key_fields!r}"

    @property
    def history_filename(self) -> str:
        """The history file's name in the run's folder when no ``history_path`` was given."""
        return HISTORY_FILENAME if self.name is None else f"fairness_history-{self.name}.jsonl"

    def _default_history_path(self, default_dir: str | os.PathLike | None) -> Path | None:
        """The history file in ``default_dir`` (the run's folder), or the one the user gave."""
        if self._history_path is not None:
            return self._history_path
        return None if default_dir is None else Path(default_dir) / self.history_filename

    def _check_siblings(self, callbacks: Iterable[Any], default_dir: str | os.PathLike | None) -> None:
        """Refuse a second callback of this package in the trainer that would share this one's
        checkpoint state or history file (each would overwrite or interleave the other's)."""
        mine = self._default_history_path(default_dir)
        for other in callbacks:
            if other is self or not isinstance(other, TrackerAdapter) or other.added_by_config:
                continue
            if other.state_key == self.state_key:
                raise ValueError(
                    f"two {type(self).__name__} in one trainer share the checkpoint key {self.state_key!r}: "
                    "give each a distinct name=..."
                )
            theirs = other._default_history_path(default_dir)
            if mine is not None and theirs is not None and Path(mine).resolve() == Path(theirs).resolve():
                raise ValueError(
                    f"two fairness callbacks in one trainer write the same history file {mine}: "
                    "give each a distinct name=... or history_path=..."
                )

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback: the tracker's state (see ``FairnessTracker.state_dict``)."""
        return self.tracker.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed run continues its run id and its early-stopping count)."""
        self.tracker.load_state_dict(state_dict)

    def _write_layout(self, writers: Iterable[Any], prefix: str = "fairness/") -> None:
        """The tracker's custom-scalars layout to each TensorBoard writer of ``writers`` (see
        :func:`~fairness_callback.training.sinks.write_layout`); marks it written if one took it."""
        layout = self.tracker.tensorboard_layout(prefix=prefix)
        for writer in writers:
            if write_layout(writer, layout):
                self._layout_written = True
