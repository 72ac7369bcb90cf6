"""Alerts: one message to a person when the fairness stop fires (and, opt-in, when a gap first
crosses a level or a probe fails), through the run's own tracker or a callable of one's own.

:class:`Alerts` is the tracker's part that decides whether an event is worth an alert and sends
it: to the active W&B run (``run.alert``), to the active Trackio run (``trackio.alert``) and to a
user callable ``on_alert(title, text)`` (Slack, PagerDuty, a webhook). It sends on rank 0 only,
never raises into training (a destination that fails is logged), and keeps to a rate limit.
Framework-free: it never imports ``wandb`` or ``trackio``, it only uses them when the training
script already has.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .._numbers import format_number
from ..probe.distributed import is_rank_zero

__all__ = ["Alerts", "AlertLevel", "resolve_callable"]

log = logging.getLogger("fairness_callback")

#: How serious an alert is: a stop and a gap over the level warn, a failed probe is an error.
AlertLevel = Literal["info", "warn", "error"]

#: W&B refuses a title of 64 characters or more.
MAX_TITLE = 63


def resolve_callable(path: str) -> Callable[..., Any]:
    """The function a dotted path names: ``"package.module.function"`` (or ``"package.module:function"``).

    Raises ValueError naming the path when its module cannot be imported, has no such attribute,
    or the attribute is not callable.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"on_alert must be a callable or a dotted path 'package.module.function', got {path!r}")
    module_name, sep, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module_name or not attribute:
        raise ValueError(f"on_alert={path!r} is not a dotted path 'package.module.function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ValueError(
            f"on_alert={path!r}: module {module_name!r} cannot be imported ({type(error).__name__}: {error})"
        ) from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"on_alert={path!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"on_alert={path!r} names a {type(target).__name__}, not a callable (title, text)")
    return target


class Alerts:
    """Send one alert when the fairness stop fires, and, opt-in, when a probe's fairness key first
    crosses a level or a probe fails.

    ``FairnessTracker(..., alerts=Alerts(on_alert=post_to_slack, gap_level=0.1))``, or
    ``HFFairnessCallback(..., alerts=Alerts())`` / ``LightningFairnessCallback(..., alerts=Alerts())``.
    Each alert has a short title (``"Fairness stop at step 1200"``) and a text with the numbers:
    the step, the key and its value, the stop line, the run id and the history file.

    Where it goes, every destination that applies (each one's failure is logged as a warning,
    never raised):

    - **W&B**: ``run.alert(title=, text=, level=wandb.AlertLevel.WARN | ERROR)`` on the run the
      tracker knows (its ``log=`` run, the Lightning trainer's ``WandbLogger``), else the global
      ``wandb.run`` (the one that transformers' ``WandbCallback`` starts for ``report_to=["wandb"]``)
      when the ``wandb`` module is imported; ``wandb`` is never imported just to look.
    - **Trackio**: ``trackio.alert(title=, text=, level=trackio.AlertLevel.WARN | ERROR)`` when
      ``trackio`` is imported and has a current run (``report_to=["trackio"]``, ``trackio.init()``).
    - **``on_alert(title, text)``**: anything else (Slack, PagerDuty, a webhook, an e-mail).

    Only rank 0 sends: on every other rank each method does nothing, so a stop (which every rank
    agrees on) is sent once. One :class:`Alerts` serves one tracker: give each callback its own.

    Args:
        on_alert: a callable ``(title, text)``, or the dotted path of one (``"mypkg.alerts.to_slack"``
            or ``"mypkg.alerts:to_slack"``, so a YAML config can name it), imported here: a path
            that does not import, or names no callable, is a ValueError naming it. None: only the
            trackers' own alerts.
        on_stop: alert when fairness early stopping stops the run (once a process's run: a loop that
            ignores ``should_stop`` and stops again later gets no second alert; a run resumed from a
            checkpoint alerts its own stop). Never held back by the rate limit.
        gap_level: alert the first time a probe's fairness key (``jsdp/gap``, each probe's
            ``<name>/jsdp/gap`` of several, a they-only probe's ``jsdp/lean``; see
            ``FairnessTracker.fairness_keys``) reaches this size, ``|value| >= gap_level``. Once per
            key per run: a key is not re-armed when it falls back below (a gap that wavers around
            the level would otherwise alert at every wobble; the history and the dashboards show
            the rest), and a resumed run remembers it (:meth:`state_dict`). Keys that cross at the
            same probe share one alert. None (default): no such alert.
        on_failure: alert when a probe fails on any rank, or the stop rule does (one alert per
            failed probe step, naming the probes, the ranks and the errors). Off by default: a
            failure is logged and written to the history either way, and training goes on.
        min_interval_s: the rate limit: seconds after an alert before another gap or failure alert
            is sent (default 600: at most one every 10 minutes). One held back is counted and the
            next alert sent says how many were; a gap crossing held back stays armed, so it is
            sent at the next probe after the interval if the key is still over the level. A stop
            alert is never held back. 0: no limit.
        wandb: None (default): send to W&B when a W&B run is active; True: the same, and warn when
            none is; False: never.
        trackio: None (default): send to Trackio when a Trackio run is active; True: the same, and
            warn when none is; False: never.
        clock: seconds of a monotonic clock, for the rate limit (default ``time.monotonic``).

    Attributes:
        on_alert: the callable (resolved from its path), or None.
        on_alert_path: the dotted path ``on_alert`` was given as, or None.
        sent: how many alerts this run sent (to any destination).
        held_back: how many the rate limit held back since the last alert sent.
    """

    def __init__(
        self,
        on_alert: Callable[[str, str], None] | str | None = None,
        *,
        on_stop: bool = True,
        gap_level: float | None = None,
        on_failure: bool = False,
        min_interval_s: float = 600.0,
        wandb: bool | None = None,
        trackio: bool | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.on_alert_path: str | None = on_alert if isinstance(on_alert, str) else None
        if isinstance(on_alert, str):
            on_alert = resolve_callable(on_alert)
        if on_alert is not None and not callable(on_alert):
            raise ValueError(
                f"on_alert must be a callable (title, text) or a dotted path 'package.module.function', "
                f"got {type(on_alert).__name__}"
            )
        self.on_alert: Callable[[str, str], None] | None = on_alert
        for name, value in (("on_stop", on_stop), ("on_failure", on_failure)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        for name, choice in (("wandb", wandb), ("trackio", trackio)):
            if choice is not None and not isinstance(choice, bool):
                raise ValueError(f"{name} must be None (when a run is active), True or False, got {choice!r}")
        if gap_level is not None and (
            isinstance(gap_level, bool) or not isinstance(gap_level, int | float) or not 0 < gap_level < math.inf
        ):
            raise ValueError(f"gap_level must be a number > 0, or None for no gap alert, got {gap_level!r}")
        if isinstance(min_interval_s, bool) or not isinstance(min_interval_s, int | float) or not 0 <= min_interval_s < math.inf:
            raise ValueError(f"min_interval_s must be a number of seconds >= 0, got {min_interval_s!r}")
        self.on_stop = on_stop
        self.gap_level = None if gap_level is None else float(gap_level)
        self.on_failure = on_failure
        self.min_interval_s = float(min_interval_s)
        self.wandb = wandb
        self.trackio = trackio
        self._now = clock or time.monotonic
        self._wandb_source: Any = None
        self._run_id: str | None = None
        self._history_path: Path | None = None
        self.reset()

    def __repr__(self) -> str:
        target = self.on_alert_path or (getattr(self.on_alert, "__qualname__", repr(self.on_alert)) if self.on_alert else None)
        return (
            f"Alerts(on_alert={target!r}, on_stop={self.on_stop}, gap_level={self.gap_level}, "
            f"on_failure={self.on_failure}, min_interval_s={self.min_interval_s}, wandb={self.wandb}, trackio={self.trackio})"
        )

    # -- the run ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """A new run: no stop sent, no key over the level yet, no rate limit pending."""
        self.sent = 0
        self.held_back = 0
        self._last_sent: float | None = None
        self._stop_sent = False
        self._over_level: set[str] = set()

    def set_run(self, run_id: str | None, history_path: str | os.PathLike | None) -> None:
        """The run the alerts speak of (the tracker calls it when it opens a run)."""
        self._run_id = run_id
        self._history_path = Path(history_path) if history_path is not None else None

    def use_wandb(self, source: Any) -> None:
        """The W&B run to alert: a run, the ``wandb`` module (its current run), or a logger whose
        ``experiment`` is the run (Lightning's ``WandbLogger``, read when an alert is sent); None:
        the global ``wandb.run``."""
        self._wandb_source = source

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the keys already over the level. (Not the stop: a run resumed
        after it stopped was restarted by someone, and its next stop is news again.)"""
        return {"over_level": sorted(self._over_level)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._over_level = set(state.get("over_level") or ())

    # -- what the tracker tells it ------------------------------------------------------------------
    def stopped(self, step: int, message: str, reason: str | None = None) -> bool:
        """The run stops at ``step``: send the stop alert (``on_stop``; once a run; never held back by
        the rate limit). ``message`` is the stop line. True when an alert was sent."""
        if not self.on_stop or self._stop_sent or not is_rank_zero():
            return False
        self._stop_sent = True
        lines = [message]
        if reason:
            lines.append(f"reason: {reason}")
        return self._guarded_send(f"Fairness stop at step {step}", lines, "warn", limited=False)

    def probed(self, step: int, metrics: Mapping[str, float], keys: Sequence[str]) -> bool:
        """A probe's ``metrics`` at ``step``: alert for the ``keys`` whose ``|value|`` first reached
        ``gap_level`` (one alert for all of them). True when an alert was sent."""
        if self.gap_level is None or not is_rank_zero():
            return False
        crossed = {}
        for key in keys:
            value = metrics.get(key)
            if key not in self._over_level and value is not None and math.isfinite(value) and abs(value) >= self.gap_level:
                crossed[key] = float(value)
        if not crossed:
            return False
        level = format_number(self.gap_level, ".4g")
        lines = [f"{key} = {format_number(value, '+.4g')} at step {step} (|value| >= {level})" for key, value in crossed.items()]
        if not self._guarded_send(f"Fairness gap over {level} at step {step}", lines, "warn", limited=True):
            return False  # held back (or nowhere to send it): the keys stay armed
        self._over_level.update(crossed)
        return True

    def failed(
        self, step: int, failures: Mapping[str | None, Mapping[int, str]], rule_failed: bool = False, raising: bool = False
    ) -> bool:
        """Probes failed at ``step`` (``{probe name: {rank: "Type: first line"}}``, None for one probe),
        or the stop rule did (``rule_failed``): one alert (``on_failure``). ``raising``: the error
        ends training (``on_error="raise"``). True when an alert was sent."""
        if not self.on_failure or not (failures or rule_failed) or not is_rank_zero():
            return False
        lines = []
        for name, ranks in failures.items():
            what = f"probe {name!r}" if name else "the probe"
            for rank, error in sorted(ranks.items()):
                lines.append(f"{what} failed at step {step} on rank {rank}: {error}" if rank >= 0 else f"{what}: {error}")
        if rule_failed and not failures:
            lines.append(f"fairness early stopping failed at step {step} (its traceback is in the training log)")
        lines.append("training stops with the error (on_error='raise')" if raising else "training goes on")
        what = "probe" if failures else "stop rule"
        return self._guarded_send(f"Fairness {what} failed at step {step}", lines, "error", limited=True)

    # -- sending ------------------------------------------------------------------------------------
    def send(self, title: str, text: str, level: AlertLevel = "warn", *, limited: bool = True) -> bool:
        """Send one alert to every destination now (rank 0; a failing destination is logged);
        ``limited``: subject to the rate limit (held back and counted within ``min_interval_s`` of
        the last one sent). True when it was handed to at least one destination (it then counts as
        sent for the rate limit, also if that destination failed)."""
        if not is_rank_zero():
            return False
        now = self._now()
        if limited and self._last_sent is not None and now - self._last_sent < self.min_interval_s:
            self.held_back += 1
            log.info(
                "fairness alert %r held back: the last one was sent %.0f s ago (min_interval_s=%g)",
                title,
                now - self._last_sent,
                self.min_interval_s,
            )
            return False
        if self.held_back:
            text += f"\n({self.held_back} earlier alert(s) held back by the rate limit, min_interval_s={self.min_interval_s:g})"
        if len(title) > MAX_TITLE:
            title = title[: MAX_TITLE - 3] + "..."
        destinations = self._destinations()
        if not destinations:
            return False
        # Handed over counts as sent, also when a destination fails (logged): a broken webhook is
        # then tried again at most once per interval, not at every probe.
        self.sent += 1
        self.held_back = 0
        self._last_sent = now
        for name, deliver in destinations:
            try:
                deliver(title, text, level)
                log.info("fairness alert %r sent to %s", title, name)
            except Exception:
                log.warning("fairness alert %r could not be sent to %s; training goes on", title, name, exc_info=True)
        return True

    def _guarded_send(self, title: str, lines: list[str], level: AlertLevel, limited: bool) -> bool:
        """:meth:`send` with the run's id and history file after ``lines``; anything that goes wrong is logged."""
        try:
            if self._run_id is not None:
                lines.append(f"run {self._run_id}")
            if self._history_path is not None:
                lines.append(f"history {self._history_path}")
            return self.send(title, "\n".join(lines), level, limited=limited)
        except Exception:
            log.warning("fairness alert %r could not be sent; training goes on", title, exc_info=True)
            return False

    def _destinations(self) -> list[tuple[str, Callable[[str, str, AlertLevel], None]]]:
        """``(name, deliver(title, text, level))`` of every destination that applies now."""
        found: list[tuple[str, Callable[[str, str, AlertLevel], None]]] = []
        if self.wandb is not False:
            run = self._wandb_run()
            if run is not None:
                found.append(("W&B", lambda title, text, level: _wandb_alert(run, title, text, level)))
            elif self.wandb:
                log.warning("fairness alert: wandb=True but no W&B run is active; not sent to W&B")
        if self.trackio is not False:
            trackio = _active_trackio()
            if trackio is not None:
                found.append(("Trackio", lambda title, text, level: _trackio_alert(trackio, title, text, level)))
            elif self.trackio:
                log.warning("fairness alert: trackio=True but no Trackio run is active; not sent to Trackio")
        if self.on_alert is not None:
            on_alert = self.on_alert
            found.append((self.on_alert_path or "on_alert", lambda title, text, level: on_alert(title, text)))
        return found

    def _wandb_run(self) -> Any:
        """The W&B run to alert (see :meth:`use_wandb`), or None when there is none."""
        source = self._wandb_source
        if source is not None and hasattr(source, "experiment") and not hasattr(source, "alert"):
            source = source.experiment  # a Lightning WandbLogger: its run (created on first use)
        if isinstance(source, types.ModuleType):
            source = getattr(source, "run", None)
        if source is not None:
            return source if hasattr(source, "alert") else None
        wandb = sys.modules.get("wandb")  # imported by the training script, or not at all
        return getattr(wandb, "run", None) if wandb is not None else None


def _wandb_alert(run: Any, title: str, text: str, level: AlertLevel) -> None:
    wandb = sys.modules.get("wandb")
    levels = getattr(wandb, "AlertLevel", None)
    run.alert(title=title, text=text, level=getattr(levels, level.upper()) if levels is not None else level.upper())


def _active_trackio() -> Any:
    """The ``trackio`` module when it is imported and has a current run (``trackio.init()``), else None."""
    trackio = sys.modules.get("trackio")
    if trackio is None or not hasattr(trackio, "alert"):
        return None
    current = getattr(getattr(trackio, "context_vars", None), "current_run", None)
    return trackio if current is not None and current.get() is not None else None


def _trackio_alert(trackio: Any, title: str, text: str, level: AlertLevel) -> None:
    levels = getattr(trackio, "AlertLevel", None)
    trackio.alert(title=title, text=text, level=getattr(levels, level.upper()) if levels is not None else level)
