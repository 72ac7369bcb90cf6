"""The engine behind both training callbacks, and the API for a training loop of one's own.

:class:`FairnessTracker` composes the parts that each do one job: the schedule (schedule.py: when
to probe), the metrics log (sinks.py: what goes to the loggers), the recorder (recorder.py: the
history lines), the stop rule (stopping/) and the vote (vote.py: the one collective after a
probe). The adapters (``integrations/hf.py``, ``integrations/lightning.py``) only translate their
framework's events into :meth:`FairnessTracker.start` / :meth:`FairnessTracker.step` /
:meth:`FairnessTracker.update_loss` calls and act on what comes back; a custom loop calls the same
three. Everything here is framework-free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .._numbers import format_number
from ..probe import FairnessProbe, ProbeResult
from ..probe.distributed import from_rank_zero, world
from ..probe.faults import ProbeFailure
from ..probe.growth import GapUnits
from ..probe.keys import MetricKey
from ..probe.suite import ProbeSuite, run_guarded
from ..probe.tasks import GENDER_TASK, ProbeTask
from .alerts import Alerts
from .history import new_run_id
from .recorder import HistoryRecorder
from .schedule import ProbeSchedule
from .sinks import MetricsLog, WandbSink
from .stopping import StopDecision, StopReason, StopRule
from .sudden_change import SuddenChangeDetector
from .vote import RankVote, vote

__all__ = [
    "FairnessTracker",
    "ProbeOutcome",
    "stop_rule_name",
    "tensorboard_layout",
]

log = logging.getLogger("fairness_callback")


def tensorboard_layout(prefix: str = "fairness/", tasks: Mapping[str | None, ProbeTask] | None = None) -> dict:
    """TensorBoard custom-scalars layout: each metric's answer groups on one chart, one category per probe.

    ``tasks``: ``{probe name: task}`` for several probes (keys ``<prefix><name>/...``), or
    ``{None: task}`` for one (default: the gender task).
    """
    layout = {}
    for name, task in (tasks or {None: GENDER_TASK}).items():
        base = f"{prefix}{name}/" if name else prefix
        minuend, subtrahend = task.gap
        charts = {
            f"{title} by answer group": ["Multiline", [f"{base}{metric}/{g}" for g in task.groups]]
            for metric, title in (("ar", "Average Rank"), ("jsdp", "JSD-P"), ("acc", "accuracy"))
        }
        charts[f"JSD-P gap ({minuend} - {subtrahend})"] = ["Multiline", [f"{base}jsdp/gap"]]
        charts[f"Average Rank gap ({minuend} - {subtrahend})"] = ["Multiline", [f"{base}ar/gap"]]
        charts[f"Mann-Whitney p ({minuend} vs {subtrahend})"] = ["Multiline", [f"{base}mwu_p/ar", f"{base}mwu_p/jsdp"]]
        if task.neutral:
            charts[f"lean on {task.neutral} ({subtrahend} - {minuend} part)"] = ["Multiline", [f"{base}jsdp/lean"]]
        layout[f"fairness/{name}" if name else "fairness"] = charts
    return layout


@dataclass
class ProbeOutcome:
    """What :meth:`FairnessTracker.step` did at one step.

    ``metrics`` is None when no probe ran (not due) or the probe failed (``failed``; in a suite,
    the probes that succeeded on every rank keep their metrics); ``should_stop`` is the same on
    every rank; ``message`` says why it stops; ``failures``: ``{probe name (None for one probe):
    {rank: "Type: first line"}}``, the same on every rank.
    """

    step: int
    metrics: dict[str, float] | None
    should_stop: bool
    message: str = ""
    probed: bool = False
    failed: bool = False
    failures: dict[str | None, dict[int, str]] = field(default_factory=dict)


def stop_rule_name(rule: StopRule | None) -> str | None:
    """A rule's registered name (``"best"``, ``"cusum"``), its class's for one not registered, None for none."""
    return None if rule is None else getattr(type(rule), "name", "") or type(rule).__name__


class FairnessTracker:
    """Probe the model's gender bias every N optimizer steps, log it, keep a history, vote to stop.

    The engine of both callbacks, and the API for a loop of one's own::

        tracker = FairnessTracker(tokenizer=tok, every_n_steps=200, early_stopping=FairnessEarlyStopping(),
                                  history_path="runs/x/fairness_history.jsonl", log=writer)
        tracker.start(model)                          # the step-0 probe (probe_at_start)
        for step in range(1, max_steps + 1):
            ...                                       # forward, backward, optimizer.step()
            if step % eval_every == 0:
                tracker.update_loss({"val_loss": val_loss})
            outcome = tracker.step(model, step)       # probes when due, on every rank
            if outcome.should_stop:
                break

    Under ``torch.distributed`` call :meth:`start` and :meth:`step` on every rank at the same
    steps: each rank scores an equal share of the prompts, one all-reduce gives every rank all
    the scores, and one more carries the stop vote, so every rank stops at the same step.
    ``model`` may be wrapped (DDP, FSDP2, DeepSpeed, accelerate, ``torch.compile``, PEFT); the
    probe sees through the wrapper (see ``FairnessProbe``).

    Args:
        tokenizer: the tokenizer (or a path to load one from) for the default probe.
        every_n_steps: probe at every step that is a multiple of this.
        probe: the :class:`~fairness_callback.FairnessProbe` to run; default: one built from
            ``tokenizer`` with the default probe set.
        probes: several named probes instead, e.g. ``{"gender": FairnessProbe(tok), "they":
            FairnessProbe(tok, ProbeSet.builtin_they()), "religion": FairnessProbe(tok,
            ProbeSet.from_bbq(dir, ["Religion"]))}``: every metric key gets the probe's name in
            front (``religion/jsdp/gap``; loggers ``fairness/religion/jsdp/gap``), early stopping
            watches one of them (``monitor="gender/jsdp/gap"``), and its stop line gives every
            other probe's gap at the stop step and at the best step.
        early_stopping: a stop rule (:class:`~fairness_callback.StopRule`: e.g.
            :class:`~fairness_callback.FairnessEarlyStopping`, :class:`~fairness_callback.SelfStartingCusum`),
            or None to only watch. Its held-out loss is ``loss_key`` unless it names its own.
        probe_at_start: :meth:`start` probes at the step it is given (0, or the resumed step).
        history_path: JSONL file that gets a run-start line and one line per probe, each with this
            run's ``run_id``, flushed at once (rank 0 writes); None: no history (the callbacks
            default to their output folder). A resumed run continues its run id.
        log: where metrics go at each probe (rank 0 only): a callable ``(metrics, step)``, a
            ``SummaryWriter``, a ``wandb`` run or a logger with ``log_metrics``
            (see :mod:`fairness_callback.training.sinks`). Keys are ``fairness/<metric>``.
        on_error: ``"warn"``: a failed probe is logged with its traceback and training goes on
            (the next probe is tried again); ``"raise"``: the error is raised on every rank.
        log_all_metrics: log every metric, not only the headline ones (the history always has all).
        probe_budget: a fraction of training time for probing (e.g. 0.02): after each probe the
            interval becomes ``ceil(probe seconds / (budget x training seconds per step))``, the
            same on every rank, and the choice is logged. None keeps ``every_n_steps``.
        loss_key: the held-out loss that :meth:`update_loss` looks for (the callbacks pass
            ``eval_loss`` / ``val_loss``).
        autocast: a context manager factory (e.g. ``lambda: torch.autocast("cuda", torch.bfloat16)``)
            entered around each probe, to score in the training precision; None: as the model is.
        alerts: an :class:`~.alerts.Alerts`: one message to a person (the W&B or Trackio run's
            alert, or a callable ``on_alert(title, text)``) when the stop fires, and opt-in when a
            fairness key first crosses a level or a probe fails; rank 0 sends, at most one every
            ``min_interval_s`` but the stop. A W&B run given as ``log`` is the run it alerts.
            None: no alert.

    The tracker is made of parts, each with one job and its own tests: :attr:`schedule`
    (:class:`~.schedule.ProbeSchedule`: when to probe), :attr:`metrics_log`
    (:class:`~.sinks.MetricsLog`: what goes to the loggers), a :class:`~.recorder.HistoryRecorder`
    (the history lines), the stop rule, :func:`~.vote.vote` (the one collective after a
    probe) and :attr:`alerts` (:class:`~.alerts.Alerts`, when given). Its own methods:
    :meth:`start`, :meth:`step`, :meth:`probe_now`, :meth:`update_loss`, :meth:`state_dict` /
    :meth:`load_state_dict` and :meth:`reset`.

    Attributes:
        schedule: when it probes (``schedule.every_n_steps``, ``schedule.last_probed_step``).
        metrics_log: which metrics go to the training loggers (``metrics_log.select(metrics)``).
        alerts: the :class:`~.alerts.Alerts` it sends (None: none).
        history_path: the history file of this run (None: none, or not known before :meth:`start`).
        latest_loss: the latest held-out loss :meth:`update_loss` found (None before any).
        last_metrics: the latest probe's metrics, identical on every rank (None before any).
        stopped_reason: a :class:`~fairness_callback.StopReason` once early stopping fired, else None.
        run_id: this run's id in the history (set by :meth:`start` or the first :meth:`step`).
    """

    def __init__(
        self,
        tokenizer: Any = None,
        every_n_steps: int = 500,
        probe: FairnessProbe | None = None,
        early_stopping: StopRule | None = None,
        probe_at_start: bool = True,
        history_path: str | os.PathLike | None = None,
        log: Any = None,
        probes: Mapping[str, FairnessProbe] | None = None,
        on_error: Literal["warn", "raise"] = "warn",
        log_all_metrics: bool = False,
        probe_budget: float | None = None,
        loss_key: str = "val_loss",
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        if on_error not in ("warn", "raise"):
            raise ValueError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
        if alerts is not None and not isinstance(alerts, Alerts):
            raise TypeError(f"alerts must be an Alerts(...) or None, got {type(alerts).__name__}")
        if probe is not None and probes:
            raise ValueError("pass probe=... or probes={...}, not both")
        self.schedule = ProbeSchedule(every_n_steps, probe_budget)
        self.metrics_log = MetricsLog(log, log_all_metrics, prefixed=bool(probes))
        self.probe: FairnessProbe | ProbeSuite | None = ProbeSuite(probes) if probes else probe
        self.tokenizer = tokenizer
        self.early_stopping = early_stopping
        self.probe_at_start = probe_at_start
        self._user_history_path = Path(history_path) if history_path is not None else None
        self.history_path: Path | None = self._user_history_path
        self.on_error = on_error
        self.autocast = autocast
        self.alerts = alerts
        if alerts is not None and isinstance(self.metrics_log.sink, WandbSink):
            alerts.use_wandb(self.metrics_log.sink.run)  # the W&B run the metrics go to gets the alerts
        #: What drives this tracker, for the run-start line (the callbacks set ``"hf"`` / ``"lightning"``).
        self.framework = "custom"
        # The held-out loss is read here, under one key: a rule that names its own key is read by it.
        self.loss_key: str = (early_stopping.loss_key if early_stopping is not None else None) or loss_key
        self.reset()

    def reset(self) -> None:
        """Forget everything of a previous run (a second ``fit`` / ``train`` with the same callback)."""
        self.last_metrics: dict[str, float] | None = None
        self.stopped_reason: StopReason | None = None
        self.stop_message: str | None = None
        self.latest_loss: float | None = None
        self.sudden_change: dict[str, SuddenChangeDetector] = {}
        self._gaps: dict[int, dict[str, float | None]] = {}  # every probe's gap keys by step, for the stop line
        self._sudden: dict[str, bool] = {}  # the latest probe's sudden-change flags
        self.schedule.reset()
        self.run_id: str | None = None
        self._resumed = False
        self._recorder = HistoryRecorder(None)
        self._opened = False
        if self.early_stopping is not None:
            self.early_stopping.reset()
        if self.alerts is not None:
            self.alerts.reset()

    @property
    def every_n_steps(self) -> int:
        """The probe interval now (``probe_budget`` may have changed it)."""
        return self.schedule.every_n_steps

    @property
    def last_probed_step(self) -> int | None:
        return self.schedule.last_probed_step

    # -- the lifecycle --------------------------------------------------------------------------
    def start(
        self,
        model: torch.nn.Module,
        step: int = 0,
        autocast: contextlib.AbstractContextManager | None = None,
        *,
        probe: bool = True,
        tokenizer: Any = None,
        default_history_path: str | os.PathLike | None = None,
    ) -> ProbeOutcome:
        """Open the run at ``step`` (0, or the step a resumed run starts from), on every rank, then,
        with ``probe_at_start``, probe there unless that step was probed already.

        Opening (once a run; a later call only probes) checks the configuration and writes the
        run-start line (a new run id, or the restored one of a resumed run). It raises
        ValueError, on every rank alike, for a stop rule that does not fit the probes (see
        :meth:`StopRule.check`) or a probe whose token ids do not fit ``model``, and OSError, on
        every rank, naming ``history_path`` when it cannot be written.

        The callbacks pass what their framework knows: ``tokenizer`` builds the probe when none
        was given; ``default_history_path`` is the history file when no ``history_path`` was
        given; ``probe=False`` opens the run without probing (the HF callback probes at its
        first step).
        """
        if not self._opened:
            self._open(model, step, tokenizer, default_history_path)
        self.schedule.start_clock(step)
        if probe and self.probe_at_start and self.schedule.last_probed_step != step:
            return self.probe_now(model, step, autocast)
        return ProbeOutcome(step, None, False)

    def step(self, model: torch.nn.Module, step: int, autocast: contextlib.AbstractContextManager | None = None) -> ProbeOutcome:
        """Call after each optimizer step (on every rank): probes if ``step`` is due, else does nothing.
        The first call of a run opens it (see :meth:`start`) when :meth:`start` was not called."""
        if not self._opened:
            self._open(model, step)
        self.schedule.start_clock(step)
        if not self.schedule.is_due(step):
            return ProbeOutcome(step, None, False)
        return self.probe_now(model, step, autocast)

    def update_loss(self, losses: Mapping[str, Any]) -> None:
        """Keep the held-out loss (if ``losses`` has ``loss_key``) for the history and the stop rule."""
        if self.loss_key not in losses:
            return
        value = losses[self.loss_key]
        self.latest_loss = float(value.item() if isinstance(value, torch.Tensor) else value)
        if self.early_stopping is not None:
            self.early_stopping.update_loss(self.latest_loss)

    def probe_now(
        self, model: torch.nn.Module, step: int, autocast: contextlib.AbstractContextManager | None = None
    ) -> ProbeOutcome:
        """Probe at ``step`` now, on every rank; failures are logged (or raised with ``on_error="raise"``).

        Every rank makes the same collectives whatever fails (see
        :func:`~fairness_callback.probe.suite.run_guarded`): a probe that failed on any rank is dropped
        on every rank, rank 0 logs which ranks failed and why, and the history gets a
        ``probe_failed`` line; the probes of a suite that succeeded keep their metrics, their
        probe line and the stop vote. :func:`~.vote.vote` then carries the stop wish, the budget
        interval and the failure flags, so every rank stops, raises and probes at the same steps.
        ``autocast`` (a context manager) overrides the tracker's own ``autocast`` for this probe.
        """
        if not self._opened:
            self._open(model, step)
        start = time.perf_counter()
        try:
            with contextlib.ExitStack() as stack:
                self._enter_autocast(stack, autocast, step)
                run = run_guarded(self._named_probes(), model, distributed=True)
            seconds = time.perf_counter() - start
            for name, ranks in run.failures.items():
                self._record_failure(step, name, ranks, run.local_error(name))
            result = self._merged(run.results)
            decision, local_error, logger_error = None, next(iter(run.errors.values()), None), None
            if result is not None:
                self._note_gaps(step, result)
                decision, rule_error, units = self._decide(step, result, run.results)
                local_error = local_error or rule_error
                self._recorder.probe(
                    step,
                    result,
                    seconds,
                    self._sudden,
                    units,
                    (self.loss_key, self.latest_loss),
                    decision,
                    self.early_stopping is not None,
                )
                logger_error = self.metrics_log.send(result.metrics, step)
            agreed = vote(
                decision,
                self.schedule.budget_interval(step, seconds),
                bool(run.failures) or local_error is not None,
                logger_error is not None,
            )
        finally:
            self.schedule.probed(step, time.perf_counter() - start)
        raising = (agreed.failed or agreed.logger_failed) and self.on_error == "raise"
        if self.alerts is not None:
            self._alert_probe(step, result, run.failures, agreed, raising)
        if raising:
            if local_error is not None or logger_error is not None:
                raise local_error or logger_error  # type: ignore[misc]
            name, ranks = next(iter(run.failures.items()), (None, {}))
            raise ProbeFailure(ranks or {-1: "another rank's early stopping or logger failed"}, name)
        self._follow_budget(agreed, seconds)
        metrics = result.metrics if result is not None else None
        if metrics is not None:
            self.last_metrics = metrics
        message = ""
        if agreed.stops:
            own = decision.message if decision is not None and decision.should_stop else None
            message = self._record_stop(step, agreed.reason, own, decision)
        return ProbeOutcome(step, metrics, agreed.stops, message, probed=True, failed=agreed.failed, failures=run.failures)

    # -- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume: the schedule, the stop rule's state, the run id and,
        with alerts, the keys already alerted over their level."""
        return {
            "run_id": self.run_id,
            **self.schedule.state_dict(),
            "latest_loss": self.latest_loss,
            "sudden_change": {key: detector.state_dict() for key, detector in self.sudden_change.items()},
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
            **({"alerts": self.alerts.state_dict()} if self.alerts is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (before :meth:`start`): the run continues under its run id."""
        self.run_id = state.get("run_id") or self.run_id
        self._resumed = True
        self.schedule.load_state_dict(state)
        self.latest_loss = state.get("latest_loss")
        for key, detector_state in (state.get("sudden_change") or {}).items():
            self.sudden_change.setdefault(key, SuddenChangeDetector()).load_state_dict(detector_state)
        if self.early_stopping is not None and state.get("early_stopping"):
            self.early_stopping.load_state_dict(state["early_stopping"])
        if self.alerts is not None and state.get("alerts"):
            self.alerts.load_state_dict(state["alerts"])

    # -- what the probes produce ----------------------------------------------------------------
    def metric_keys(self) -> set[str] | None:
        """Every metric key a probe step will produce (``<name>/...`` for several probes); None when a
        probe cannot say before it runs (one that is not a :class:`FairnessProbe`)."""
        keys: set[str] = set()
        for name, probe in self._named_probes().items():
            if not hasattr(probe, "metric_keys"):
                return None
            keys.update(f"{name}/{key}" if name else key for key in probe.metric_keys)
        return keys

    @property
    def tasks(self) -> dict[str | None, ProbeTask]:
        """``{probe name: task}`` for several probes, ``{None: task}`` for one."""
        if isinstance(self.probe, ProbeSuite):
            return {name: task for name, task in self.probe.tasks.items()}
        return {None: getattr(self.probe, "task", GENDER_TASK)}

    def fairness_keys(self) -> list[str]:
        """The key that stands for each probe, its gap or its lean: ``jsdp/gap``, or ``<name>/jsdp/gap`` for
        several; a probe with no gap, e.g. only singular-"they" sentences, ``jsdp/lean`` (see
        ``FairnessProbe.fairness_key``). Each gets a sudden-change flag and a place in the stop line."""
        keys = {name: getattr(probe, "fairness_key", "jsdp/gap") for name, probe in self._named_probes().items()}
        return [f"{name}/{key}" if name else key for name, key in keys.items()]

    def tensorboard_layout(self, prefix: str = "fairness/") -> dict:
        """The custom-scalars layout of this tracker's probes (see :func:`tensorboard_layout`)."""
        return tensorboard_layout(prefix, self.tasks)

    # -- opening a run --------------------------------------------------------------------------
    def _open(
        self,
        model: torch.nn.Module | None,
        step: int,
        tokenizer: Any = None,
        default_history_path: str | os.PathLike | None = None,
    ) -> None:
        """Build the probe if needed, check the configuration, write the run-start line; on every rank."""
        if self.probe is None:
            tokenizer = self.tokenizer if self.tokenizer is not None else tokenizer
            if tokenizer is None:
                raise ValueError(
                    "FairnessTracker needs a probe or a tokenizer: pass probe=FairnessProbe(tokenizer) or "
                    "tokenizer=..., or give the trainer / LightningModule a tokenizer"
                )
            self.probe = FairnessProbe(tokenizer)
        self.metrics_log.prefixed = isinstance(self.probe, ProbeSuite)
        self.history_path = self._user_history_path
        if self.history_path is None and default_history_path is not None:
            self.history_path = Path(default_history_path)
        self._check(model)
        # Every rank keeps rank 0's id (the one in the history and in rank 0's checkpoints).
        run_id = self.run_id or new_run_id()
        recorder = HistoryRecorder(self.history_path)
        problem = recorder.open(run_id, {**self._run_info(), "step": step}, resumed=self._resumed)
        self.run_id, problem = from_rank_zero((run_id, problem))
        if problem is not None:
            raise OSError(problem)
        self._recorder, self._opened = recorder, True
        if self.alerts is not None:
            self.alerts.set_run(self.run_id, self.history_path)
        self.metrics_log.show_layout(self.tensorboard_layout())

    def _check(self, model: torch.nn.Module | None = None) -> None:
        """The stop rule against the probes' metric keys (known from their tasks before any probe
        runs) and, given ``model``, each probe's token ids against the model's vocabulary."""
        probes = self._named_probes()
        if self.early_stopping is not None:
            keys = self.metric_keys()
            if keys is not None:
                name = self._probe_of(self.early_stopping.monitor) if None not in probes else None
                task = self.tasks.get(name)
                self.early_stopping.check(keys, task.gap if task is not None else None, self.loss_key)
        if model is not None:
            for probe in probes.values():
                if hasattr(probe, "check_model"):
                    probe.check_model(model)

    def _run_info(self) -> dict[str, Any]:
        """What a run-start line says of the probe and the schedule."""
        probe: Any = self.probe  # a FairnessProbe, a ProbeSuite or a user's own probe object
        probe_set = getattr(probe, "probe_set", probe)
        names = [name for name in self.tasks if name]
        return {
            "framework": self.framework,
            "probe_set": getattr(probe_set, "name", None),
            "probes": names or None,
            "num_prompts": len(probe) if hasattr(probe, "__len__") else None,
            "every_n_steps": self.schedule.every_n_steps,
            "probe_budget": self.schedule.probe_budget,
            "monitor": self.early_stopping.monitor if self.early_stopping else None,
            "stop_rule": stop_rule_name(self.early_stopping),
        }

    # -- one probe, in parts --------------------------------------------------------------------
    def _named_probes(self) -> dict[str | None, Any]:
        """``{name: probe}`` of a suite, ``{None: probe}`` for one."""
        if isinstance(self.probe, ProbeSuite):
            return {name: probe for name, probe in self.probe.probes.items()}
        return {None: self.probe}

    @staticmethod
    def _probe_of(key: str) -> str | None:
        """The suite probe a prefixed key belongs to (``religion/jsdp/gap`` -> ``religion``); None for none."""
        parsed = MetricKey.try_parse(key)
        return parsed.scope[0] if parsed is not None and parsed.scope else None

    def _enter_autocast(self, stack: contextlib.ExitStack, autocast: contextlib.AbstractContextManager | None, step: int) -> None:
        try:
            if autocast is not None:
                stack.enter_context(autocast)
            elif self.autocast is not None:
                stack.enter_context(self.autocast())
        except Exception:  # every rank must still run the probes' collectives
            log.error("fairness probe at step %d: its autocast could not be entered; probing without it", step, exc_info=True)

    @staticmethod
    def _merged(results: Mapping[str | None, ProbeResult]) -> ProbeResult | None:
        """One probe's result, or a suite's merged result of the probes that succeeded (None: none did)."""
        if not results:
            return None
        if None in results:
            return results[None]
        return ProbeSuite.merge(results)  # type: ignore[arg-type]

    def _decide(
        self, step: int, result: ProbeResult, results: Mapping[str | None, ProbeResult]
    ) -> tuple[StopDecision | None, BaseException | None, dict[str, GapUnits]]:
        """This rank's stop decision at this probe (None: no rule, or its gap is missing), the rule's
        error if it failed (logged; the probe line is written all the same), and the gaps'
        per-sentence values (for a rule that needs them, and for the history)."""
        rule = self.early_stopping
        needs_units = rule is not None and rule.needs_units
        units = self._units(results) if needs_units or self._recorder.writing else {}
        if rule is None or rule.monitor not in result.metrics:
            return None, None, units
        try:
            if needs_units:
                return rule.step(step, result.metrics, units=units.get(rule.monitor)), None, units
            return rule.step(step, result.metrics), None, units
        except Exception as exc:
            log.error("fairness early stopping failed at step %d; training goes on", step, exc_info=True)
            return None, exc, units

    def _follow_budget(self, agreed: RankVote, seconds: float) -> None:
        if agreed.interval and agreed.interval != self.schedule.every_n_steps:
            assert self.schedule.probe_budget is not None  # a new interval comes only from the budget
            log.warning(
                "fairness probe budget %.1f%%: a probe took %.2f s; probing every %d steps from now (was %d)",
                100 * self.schedule.probe_budget,
                seconds,
                agreed.interval,
                self.schedule.every_n_steps,
            )
            self.schedule.set_interval(agreed.interval)

    def _record_failure(self, step: int, name: str | None, ranks: Mapping[int, str], error: BaseException | None) -> None:
        """Log a failed probe (each failing rank its traceback; rank 0 which ranks failed and why) and
        write its ``probe_failed`` line."""
        rank, world_size = world()
        what = f"fairness probe {name!r}" if name else "fairness probe"
        if error is not None:
            where = f" on rank {rank}" if world_size > 1 else ""
            log.error("%s at step %d failed%s; training goes on", what, step, where, exc_info=error)
        if rank != 0:
            return
        failure = ProbeFailure(ranks, name)
        if world_size > 1:
            log.error("fairness probe at step %d: %s; training goes on on every rank", step, failure)
        self._recorder.failure(step, failure)

    def _alert_probe(
        self,
        step: int,
        result: ProbeResult | None,
        failures: Mapping[str | None, Mapping[int, str]],
        agreed: RankVote,
        raising: bool,
    ) -> None:
        """The alerts of a probe step (rank 0 sends; after the vote, so the failures are every rank's):
        a failure, and the fairness keys that reached the alerts' level. Never raises."""
        assert self.alerts is not None
        try:
            if agreed.failed:
                self.alerts.failed(step, failures, rule_failed=not failures, raising=raising)
            if result is not None:
                self.alerts.probed(step, result.metrics, self.fairness_keys())
        except Exception:
            log.warning("fairness alerts at step %d failed; training goes on", step, exc_info=True)

    def _note_gaps(self, step: int, result: ProbeResult) -> None:
        """Each probe's key gap at ``step`` for the stop line, and its sudden-change flag."""
        self._sudden = {}
        for key in self.fairness_keys():
            value = result.metrics.get(key, float("nan"))
            self._sudden[key] = self.sudden_change.setdefault(key, SuddenChangeDetector()).update(value)
            if self._sudden[key]:
                log.info("fairness probe at step %d: sudden change of %s to %.4g", step, key, value)
        self._gaps[step] = {key: result.metrics.get(key) for key in self.fairness_keys()}

    def _units(self, results: Mapping[str | None, ProbeResult]) -> dict[str, GapUnits]:
        """Per-sentence values of each probe's gap and of the monitored gap (for the paired bootstrap
        of ``FairnessEarlyStopping(test="bootstrap")``, and kept in the history for offline rules)."""
        keys = dict.fromkeys(self.fairness_keys() + ([self.early_stopping.monitor] if self.early_stopping else []))
        probes = self._named_probes()
        units: dict[str, GapUnits] = {}
        for key in keys:
            parsed = MetricKey.try_parse(key)
            if None in probes:
                name, rest = None, key
            elif parsed is not None and parsed.scope:
                name, rest = parsed.scope[0], str(parsed.without_scope())
            else:
                continue
            probe = probes.get(name)
            if (
                name in results
                and probe is not None
                and hasattr(probe, "gap_units")
                and (found := probe.gap_units(results[name], rest))
            ):
                units[key] = found
        return units

    def _record_stop(self, step: int, reason: StopReason, message: str | None, decision: StopDecision | None = None) -> str:
        """The stop line and the log line of a stop; ``message`` None: another rank's rule fired;
        ``decision``: this rank's (its fairest step and value)."""
        stopping = self.early_stopping
        if message is None:
            # Another rank's rule fired (ranks can see different held-out losses); this one did not.
            message = f"stopping at step {step}: another rank's fairness early stopping fired ({reason.value})"
        best_step = decision.best_step if decision is not None else None
        others = {
            key: {
                "at_stop": self._gaps.get(step, {}).get(key),
                "at_best": self._gaps.get(best_step, {}).get(key) if best_step is not None else None,
            }
            for key in self.fairness_keys()
            if not stopping or key != stopping.monitor
        }
        if len(self.tasks) > 1 and others:
            message += "; other probes at step {} (best step {}): {}".format(
                step,
                best_step,
                ", ".join(
                    f"{k} {format_number(v['at_stop'], '+.4g')} ({format_number(v['at_best'], '+.4g')})"
                    for k, v in others.items()
                ),
            )
        self.stopped_reason, self.stop_message = reason, message
        log.warning("fairness early stopping: %s", message)
        if self.alerts is not None:
            try:
                self.alerts.stopped(step, message, reason.value)
            except Exception:
                log.warning("fairness stop alert at step %d failed; training stops all the same", step, exc_info=True)
        self._recorder.stop(
            step,
            reason,
            message,
            stopping.monitor if stopping else None,
            stop_rule_name(stopping),
            decision,
            others if len(self.tasks) > 1 else None,
        )
        return message
