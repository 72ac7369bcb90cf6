"""The engine behind both training callbacks: when to probe, the probe itself, history, stopping.

The adapters (``integrations/hf.py``, ``integrations/lightning.py``) only translate their
framework's events into :meth:`FairnessMonitor.maybe_probe` calls and act on what it returns;
everything here is framework-free and the same under both.
"""

from __future__ import annotations

import contextlib
import math
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Literal

import torch

from .distributed import is_rank_zero, max_over_ranks
from .history import HISTORY_FILENAME, HistoryWriter
from .changes import SuddenChangeDetector
from .probe import FairnessProbe, ProbeResult
from .stopping import FairnessEarlyStopping, StopReason

log = logging.getLogger("fairness_callback")

#: Metrics sent to the training loggers by default (every metric goes to the history file).
HEADLINE_METRICS: tuple[str, ...] = tuple(
    [f"{m}/{g}" for m in ("ar", "jsdp", "acc") for g in ("male", "female", "not_specified")]
    + ["ar/gap", "jsdp/gap", "ar/abs_gap", "jsdp/abs_gap", "mwu_p/ar", "mwu_p/jsdp", "mwu_rbc/ar", "mwu_rbc/jsdp"]
)


def tensorboard_layout(prefix: str = "fairness/") -> dict:
    """TensorBoard custom-scalars layout: the three answer groups of each metric on one chart."""
    groups = ("male", "female", "not_specified")
    charts = {
        f"{title} by answer group": ["Multiline", [f"{prefix}{metric}/{g}" for g in groups]]
        for metric, title in (("ar", "Average Rank"), ("jsdp", "JSD-P"), ("acc", "accuracy"))
    }
    charts["JSD-P gap (female - male)"] = ["Multiline", [f"{prefix}jsdp/gap"]]
    charts["Average Rank gap (female - male)"] = ["Multiline", [f"{prefix}ar/gap"]]
    charts["Mann-Whitney p (female vs male)"] = ["Multiline", [f"{prefix}mwu_p/ar", f"{prefix}mwu_p/jsdp"]]
    return {"fairness": charts}


def probe_record(step: int, result: ProbeResult, seconds: float, sudden: bool) -> dict[str, Any]:
    """A history line for one probe (the live callbacks and the offline replay write the same)."""
    record: dict[str, Any] = {"event": "probe", "step": step, "time": time.time(), "probe_seconds": seconds}
    record.update(result.metrics)
    record["jsdp/gap_sudden"] = sudden
    record["by_seed"] = result.by_seed
    return record


@dataclass
class ProbeOutcome:
    """What one probe produced: its metrics (None if it failed) and whether to stop now."""

    step: int
    metrics: dict[str, float] | None
    should_stop: bool
    message: str = ""


class FairnessMonitor:
    """Runs the probe every ``every_n_steps`` optimizer steps and keeps what it finds.

    See :class:`fairness_callback.integrations.hf.FairnessCallback` for the arguments; the
    adapters pass them through unchanged, plus ``default_loss_key`` and ``default_dir``.
    """

    def __init__(
        self,
        every_n_steps: int,
        probe: FairnessProbe | None,
        tokenizer: Any,
        early_stopping: FairnessEarlyStopping | None,
        probe_at_start: bool,
        history_path: str | os.PathLike | None,
        on_error: Literal["warn", "raise"],
        log_all_metrics: bool,
        default_loss_key: str,
        probe_budget: float | None = None,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if probe_budget is not None and not 0 < probe_budget < 1:
            raise ValueError(f"probe_budget must be a fraction of training time in (0, 1), got {probe_budget}")
        if on_error not in ("warn", "raise"):
            raise ValueError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
        self.every_n_steps = self.initial_every_n_steps = every_n_steps
        self.probe_budget = probe_budget
        self.probe = probe
        self.tokenizer = tokenizer
        self.early_stopping = early_stopping
        self.probe_at_start = probe_at_start
        self.user_history_path = Path(history_path) if history_path is not None else None
        self.history_path: Path | None = None
        self.on_error = on_error
        self.log_all_metrics = log_all_metrics
        if early_stopping is not None and early_stopping.loss_key is None:
            early_stopping.loss_key = default_loss_key
        self.loss_key = early_stopping.loss_key if early_stopping is not None else default_loss_key
        self._writer: HistoryWriter | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything of a previous run (a second ``fit`` / ``train`` with the same callback)."""
        self.last_metrics: dict[str, float] | None = None
        self.last_probed_step: int | None = None
        self.stopped_reason: StopReason | None = None
        self.stop_message: str | None = None
        self.latest_loss: float | None = None
        self.sudden_change = SuddenChangeDetector()
        self.every_n_steps = self.initial_every_n_steps
        self._clock: tuple[float, int] | None = None  # (wall time, step) when this run was first seen
        self._probe_seconds_total = 0.0
        if self.early_stopping is not None:
            self.early_stopping.reset()

    # -- set-up ---------------------------------------------------------------------------------
    def setup(self, tokenizer: Any = None, default_dir: str | os.PathLike | None = None) -> None:
        """Build the probe from the framework's tokenizer if none was given; choose the history file."""
        if self.probe is None:
            tokenizer = self.tokenizer if self.tokenizer is not None else tokenizer
            if tokenizer is None:
                raise ValueError(
                    "FairnessCallback needs a probe or a tokenizer: pass probe=FairnessProbe(tokenizer) or "
                    "tokenizer=..., or give the trainer / LightningModule a tokenizer"
                )
            self.probe = FairnessProbe(tokenizer)
        self.history_path = self.user_history_path
        if self.history_path is None and default_dir is not None:
            self.history_path = Path(default_dir) / HISTORY_FILENAME
        self._writer = HistoryWriter(self.history_path) if self.history_path is not None and is_rank_zero() else None

    # -- the probe ------------------------------------------------------------------------------
    def is_due(self, step: int) -> bool:
        if self._clock is None:
            self._clock = (time.perf_counter(), step)
        return step % self.every_n_steps == 0 and step != self.last_probed_step

    def _budget_interval(self, step: int, probe_seconds: float) -> int:
        """The interval that keeps probing at ``probe_budget`` of training time (0: not known yet)."""
        if self.probe_budget is None or self._clock is None or step <= self._clock[1]:
            return 0
        training = time.perf_counter() - self._clock[0] - self._probe_seconds_total - probe_seconds
        step_seconds = max(training, 1e-9) / (step - self._clock[1])
        return max(1, math.ceil(probe_seconds / (self.probe_budget * step_seconds)))

    def logged_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The metrics to send to the training loggers, under the ``fairness/`` prefix."""
        keys = metrics if self.log_all_metrics else [k for k in HEADLINE_METRICS if k in metrics]
        return {f"fairness/{k}": float(metrics[k]) for k in keys}

    def run_probe(self, model: torch.nn.Module, step: int, autocast: ContextManager | None = None) -> ProbeOutcome:
        """Probe at ``step`` on every rank; failures are logged (or raised with ``on_error="raise"``).

        Every rank takes part in one vote even when its probe failed, so no rank waits forever:
        all ranks stop if any rank's policy says stop (with the same reason), and with
        ``on_error="raise"`` all ranks raise if any rank's probe failed.
        """
        self.last_probed_step = step
        metrics, reason, message, error, interval = None, StopReason.NOT_STOPPED, "", None, 0
        start = time.perf_counter()
        try:
            with autocast or contextlib.nullcontext():
                result = self.probe.run(model, distributed=True)
            metrics = result.metrics
            seconds = time.perf_counter() - start
            if self.early_stopping is not None:
                decision = self.early_stopping.step(step, metrics)
                reason, message = decision.reason, decision.message
            interval = self._budget_interval(step, seconds)
            self._write_probe(step, result, seconds)
        except Exception as exc:  # noqa: BLE001 - a probe must never crash training unless asked to
            error = exc
            log.error("fairness probe at step %d failed; training goes on", step, exc_info=True)
        self._probe_seconds_total += time.perf_counter() - start
        codes = list(StopReason)
        # One all-reduce carries the stop vote, the failure flag and the budget interval, so that
        # every rank stops, raises and probes at the same steps.
        reason_code, failed, interval = max_over_ranks([codes.index(reason), int(error is not None), interval])
        if failed and self.on_error == "raise":
            raise error if error is not None else RuntimeError(f"fairness probe at step {step} failed on another rank")
        if interval and interval != self.every_n_steps:
            log.warning("fairness probe budget %.1f%%: a probe took %.2f s; probing every %d steps from now (was %d)",
                        100 * self.probe_budget, time.perf_counter() - start, interval, self.every_n_steps)
            self.every_n_steps = interval
        if metrics is not None:
            self.last_metrics = metrics
        stop = reason_code > 0
        if stop:
            self._record_stop(step, codes[reason_code], message)
        return ProbeOutcome(step, metrics, stop, message)

    def _write_probe(self, step: int, result: ProbeResult, seconds: float) -> None:
        sudden = self.sudden_change.update(result.metrics["jsdp/gap"])
        if sudden:
            log.info("fairness probe at step %d: sudden change of jsdp/gap to %.4g", step, result.metrics["jsdp/gap"])
        if self._writer is None:
            return
        record = probe_record(step, result, seconds, sudden)
        record[self.loss_key] = self.latest_loss
        if self.early_stopping is not None:
            record["stopping/best"] = self.early_stopping.best
            record["stopping/best_step"] = self.early_stopping.best_step
            record["stopping/wait"] = self.early_stopping.wait
        self._writer.append(record)

    def _record_stop(self, step: int, reason: StopReason, message: str) -> None:
        stopping = self.early_stopping
        if not message.startswith("stopping"):
            # Another rank's policy fired (ranks can see different held-out losses); this one did not.
            message = f"stopping at step {step}: another rank's fairness early stopping fired ({reason.value})"
        self.stopped_reason, self.stop_message = reason, message
        log.warning("FairnessEarlyStopping: %s", message)
        if self._writer is not None:
            self._writer.append({
                "event": "stop", "step": step, "time": time.time(), "reason": reason.value, "message": message,
                "monitor": stopping.monitor if stopping else None,
                "best_step": stopping.best_step if stopping else None,
                "best_value": stopping.best if stopping else None,
            })

    def update_loss(self, losses: dict[str, Any]) -> None:
        """Keep the trainer's held-out loss (if ``losses`` has it) for the history and the policy."""
        if self.loss_key not in losses:
            return
        value = losses[self.loss_key]
        self.latest_loss = float(value.item() if isinstance(value, torch.Tensor) else value)
        if self.early_stopping is not None:
            self.early_stopping.update_loss(self.latest_loss)

    # -- resume ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "last_probed_step": self.last_probed_step,
            "latest_loss": self.latest_loss,
            "every_n_steps": self.every_n_steps,
            "sudden_change": self.sudden_change.state_dict(),
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_probed_step = state.get("last_probed_step")
        self.latest_loss = state.get("latest_loss")
        self.every_n_steps = state.get("every_n_steps", self.every_n_steps)
        self.sudden_change.load_state_dict(state.get("sudden_change", {}))
        if self.early_stopping is not None and state.get("early_stopping"):
            self.early_stopping.load_state_dict(state["early_stopping"])
