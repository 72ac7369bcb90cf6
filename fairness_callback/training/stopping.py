"""Fairness-aware early stopping: stop when the male/female gap grows while held-out loss holds.

Framework-free: the adapters feed it probe metrics and held-out losses, and act on its decision.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Literal

from ..probe.growth import GapUnits, growth_lower_bound

log = logging.getLogger(__name__)


class StopReason(str, Enum):
    """Why :class:`FairnessEarlyStopping` stopped training (or did not).

    When ranks' policies disagree (each sees its own held-out loss), one reason stands for all:
    the one of highest :attr:`priority` (:meth:`combine`), ``GAP_GREW_NO_LOSS > GAP_GREW >
    NOT_STOPPED``. Any stop beats not stopping (every rank stops at the same step), and a rank that
    decided without a held-out loss wins over one that checked it, so the stop line never claims a
    loss check that some rank did not make. The priority is an int so that one all-reduce (MAX)
    combines it across ranks.
    """

    NOT_STOPPED = "not_stopped"
    GAP_GREW = "gap_grew"
    """The gap exceeded its best for ``patience`` probes and held-out loss was within tolerance."""
    GAP_GREW_NO_LOSS = "gap_grew_no_loss"
    """The gap exceeded its best for ``patience`` probes; no held-out loss was known."""

    @property
    def priority(self) -> int:
        """This reason's rank when reasons are combined (:meth:`combine`): 0 for ``NOT_STOPPED``, higher wins."""
        return _BY_PRIORITY.index(self)

    @classmethod
    def from_priority(cls, priority: int) -> StopReason:
        """The reason of ``priority`` (the inverse of :attr:`priority`)."""
        return _BY_PRIORITY[priority]

    @classmethod
    def combine(cls, reasons: Iterable[StopReason]) -> StopReason:
        """The reason that stands for all of ``reasons`` (e.g. every rank's): the highest :attr:`priority`;
        ``NOT_STOPPED`` for none."""
        return max(reasons, key=lambda reason: reason.priority, default=cls.NOT_STOPPED)


#: The combination order of :class:`StopReason`, lowest first (:attr:`StopReason.priority` is the index).
_BY_PRIORITY: tuple[StopReason, ...] = (StopReason.NOT_STOPPED, StopReason.GAP_GREW, StopReason.GAP_GREW_NO_LOSS)


@dataclass(frozen=True)
class StopDecision:
    """The outcome of one probe: stop or not, why, a sentence with the numbers, and the numbers.

    ``value``: the watched value at this probe (``|value|`` with ``use_abs``; NaN as the probe gave
    it, in warmup too); ``best`` / ``best_step`` / ``wait``: the policy's best value, its step and
    the count of worse probes after this one (``best`` and ``best_step`` None before any best).
    A :class:`StopDecision` made by hand may leave the numbers out (None).
    """

    should_stop: bool
    reason: StopReason
    message: str
    value: float | None = None
    best: float | None = None
    best_step: int | None = None
    wait: int | None = None


class FairnessEarlyStopping:
    """Stop training when the fairness gap grows while held-out loss stays within tolerance.

    The rule: track the best (smallest) monitored value seen; count consecutive probes where it
    exceeds ``best + min_delta``; when the count reaches ``patience`` and the latest held-out loss
    is within ``loss_tolerance`` (relative) of the best held-out loss seen, stop. With
    ``test="bootstrap"`` a probe counts as worse only when the gap's growth since the best step
    exceeds ``min_delta`` with confidence: a paired bootstrap over sentences (the same sentences
    resampled at both probes, :mod:`fairness_callback.probe.growth`) whose one-sided ``1 - alpha``
    lower bound of the growth is above ``min_delta``.

    Args:
        monitor: metric key of the probe to watch, e.g. ``"jsdp/gap"``, ``"ar/gap"``, ``"pro/jsdp/gap"``.
        min_delta: how far above the best a value must be to count as worse (default 0.015: with
            ``rebase_loss_drop=0.5`` and ``patience=3``, the defaults chosen from the measured
            false stops, detections and delays of docs/stopping.md).
        patience: consecutive worse probes before stopping.
        loss_key: name of the held-out loss; None lets the adapter choose (``"eval_loss"`` for the
            HF Trainer, ``"val_loss"`` for Lightning).
        loss_tolerance: stop only if ``latest_loss <= best_loss * (1 + loss_tolerance)``.
        warmup_steps: probes before this step are ignored (the phase where an untrained model
            answers one option for every prompt and the gap jumps with it).
        use_abs: watch ``|value|`` (a gap in either direction is unfair); False watches the signed value.
        stop_on_significant_only: a probe counts as worse only if male and female answers differ
            significantly (Mann-Whitney ``p < alpha`` on the monitored metric).
        alpha: significance level for ``stop_on_significant_only`` and ``test="bootstrap"``.
        min_accuracy: ignore probes where the accuracy on male- or on female-answer prompts (a
            task's two gap groups: BBQ's consistent and inconsistent answers) is below this. A
            model that has not learned to read the pronoun answers one option for every prompt,
            and its gap then only says which option that is. 0 (default) ignores nothing:
            Average Rank and JSD-P are informative at zero accuracy, as in the paper.
        require_loss: never stop without a held-out loss (by default it says so once and decides on
            the gap alone).
        test: ``"point"`` compares the gap's values; ``"bootstrap"`` tests its growth (see above;
            the monitor must be a ``.../<ar|jsdp>/gap`` or ``abs_gap`` key, and ``step`` gets the
            probe's per-sentence values, as the monitor passes them).
        n_boot: bootstrap resamples of ``test="bootstrap"`` (seeded: every rank decides alike).
        rebase_loss_drop: once the held-out loss has fallen by more than this fraction since the
            best step (``latest_loss * (1 + rebase_loss_drop) < `` the loss at the best step), that
            best is stale and the current probe becomes the best. A stop then never names as
            fairest a model far worse than the current one, such as the untrained model of the
            first probes (which answers one option everywhere, so its gap is about 0), and no
            ``warmup_steps`` is needed to skip that phase. A best with no held-out loss known at its
            step is stale as soon as one is. None: never (without held-out losses it never acts).
            Default 0.5: the held-out loss has fallen by a third since the best step.
    """

    def __init__(
        self,
        monitor: str = "jsdp/gap",
        min_delta: float = 0.015,
        patience: int = 3,
        loss_key: str | None = None,
        loss_tolerance: float = 0.02,
        warmup_steps: int = 0,
        use_abs: bool = True,
        stop_on_significant_only: bool = False,
        alpha: float = 0.01,
        min_accuracy: float = 0.0,
        require_loss: bool = False,
        test: Literal["point", "bootstrap"] = "point",
        n_boot: int = 1000,
        rebase_loss_drop: float | None = 0.5,
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if loss_tolerance < 0:
            raise ValueError(f"loss_tolerance must be >= 0, got {loss_tolerance}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if not 0 <= min_accuracy <= 1:
            raise ValueError(f"min_accuracy must be in [0, 1], got {min_accuracy}")
        if test not in ("point", "bootstrap"):
            raise ValueError(f"test must be 'point' or 'bootstrap', got {test!r}")
        if rebase_loss_drop is not None and not rebase_loss_drop >= 0:
            raise ValueError(f"rebase_loss_drop must be >= 0 or None, got {rebase_loss_drop}")
        if n_boot < 100:
            raise ValueError(f"n_boot must be >= 100, got {n_boot}")
        if test == "bootstrap" and not self._is_unit_gap(monitor):
            raise ValueError(
                f"FairnessEarlyStopping(test='bootstrap') needs a '.../<ar|jsdp>/gap' or '.../abs_gap' "
                f"monitor (a difference of two groups' means over sentences), got monitor={monitor!r}"
            )
        self.monitor = monitor
        self.min_delta = min_delta
        self.patience = patience
        self.loss_key = loss_key
        self.loss_tolerance = loss_tolerance
        self.warmup_steps = warmup_steps
        self.use_abs = use_abs
        self.stop_on_significant_only = stop_on_significant_only
        self.alpha = alpha
        self.min_accuracy = min_accuracy
        self.require_loss = require_loss
        self.test = test
        self.n_boot = n_boot
        self.rebase_loss_drop = rebase_loss_drop
        self._gap_groups: tuple[str, ...] = ("male", "female")  # the task's, once check() is given them
        self.reset()

    @staticmethod
    def _is_unit_gap(key: str) -> bool:
        parts = key.split("/")
        return len(parts) >= 2 and parts[-1] in ("gap", "abs_gap") and parts[-2] in ("ar", "jsdp")

    def reset(self) -> None:
        self.best: float = math.inf
        self.best_units: GapUnits | None = None  # the best step's per-sentence values (test="bootstrap")
        self.best_step: int | None = None
        self.loss_at_best: float | None = None  # the latest held-out loss when the best was set
        self.wait = 0
        self.best_loss: float = math.inf
        self.latest_loss: float | None = None
        self.stopped_step: int | None = None
        self.reason = StopReason.NOT_STOPPED
        self._said_no_loss = False

    @property
    def p_value_key(self) -> str:
        """The Mann-Whitney key that goes with ``monitor``: ``"jsdp/gap"`` and ``"jsdp/abs_gap"`` ->
        ``"mwu_p/jsdp"``, ``"religion/ar/gap"`` -> ``"religion/mwu_p/ar"``."""
        parts = self.monitor.split("/")
        if len(parts) < 2 or parts[-1] not in ("gap", "abs_gap"):
            raise ValueError(
                f"FairnessEarlyStopping(stop_on_significant_only=True) needs a '.../<metric>/gap' or "
                f"'.../<metric>/abs_gap' monitor (a gap between two groups has a Mann-Whitney p), "
                f"got monitor={self.monitor!r}"
            )
        return "/".join(parts[:-2] + ["mwu_p", parts[-2]])

    def accuracy_keys(self) -> tuple[str, str]:
        """The accuracy keys that ``min_accuracy`` reads: ``acc/<group>`` of the monitored probe's two
        gap groups (gender: female and male; BBQ: inconsistent and consistent; set by :meth:`check`)."""
        prefix = self.monitor.rsplit("/", 2)[0] + "/" if self.monitor.count("/") >= 2 else ""
        return tuple(f"{prefix}acc/{group}" for group in self._gap_groups)  # type: ignore[return-value]

    def check(self, metric_keys: Iterable[str], gap_groups: tuple[str, str] | None = None) -> None:
        """Check this rule against the keys the probes will produce, before any probe runs.

        Raises ValueError naming the known keys for an unknown ``monitor``, a p-value rule on a
        metric without a p-value, or ``min_accuracy`` where the probe has no such accuracies.
        ``gap_groups``: the monitored probe's task's gap groups, used by ``min_accuracy`` from now on.
        """
        keys = set(metric_keys)
        if self.monitor not in keys:
            gaps = sorted(k for k in keys if k.rsplit("/", 1)[-1] in ("gap", "abs_gap", "lean"))
            raise ValueError(
                f"FairnessEarlyStopping(monitor={self.monitor!r}): the probes have no such metric; "
                f"their gap metrics: {', '.join(gaps)} (every metric: ProbeResult.metrics)"
            )
        if self.stop_on_significant_only and self.p_value_key not in keys:
            raise ValueError(
                f"FairnessEarlyStopping(stop_on_significant_only=True): monitor {self.monitor!r} has no "
                f"p-value {self.p_value_key!r}; p-values: {', '.join(sorted(k for k in keys if '/mwu_p/' in '/' + k))}"
            )
        if gap_groups is not None:
            self._gap_groups = tuple(gap_groups)
        if self.min_accuracy > 0:
            missing = [key for key in self.accuracy_keys() if key not in keys]
            if missing:
                raise ValueError(
                    f"FairnessEarlyStopping(min_accuracy={self.min_accuracy}): monitor {self.monitor!r} "
                    f"has no {' or '.join(missing)}; accuracies: "
                    f"{', '.join(sorted(k for k in keys if k.rsplit('/', 2)[-2:-1] == ['acc']))}"
                )

    def update_loss(self, loss: float) -> None:
        """Record a held-out loss (call it whenever the trainer evaluates)."""
        if loss is None or not math.isfinite(loss):
            return
        self.latest_loss = float(loss)
        self.best_loss = min(self.best_loss, float(loss))

    def step(self, step: int, metrics: Mapping[str, float], units: GapUnits | None = None) -> StopDecision:
        """Feed one probe's metrics (and, for ``test="bootstrap"``, the monitored gap's per-sentence
        ``units``, e.g. ``probe.gap_units(result, monitor)``); returns whether to stop now, and why."""
        if self.test == "bootstrap" and units is None:
            raise ValueError(
                "FairnessEarlyStopping(test='bootstrap').step needs the gap's per-sentence values: "
                f"units=probe.gap_units(result, {self.monitor!r})"
            )
        if self.monitor not in metrics:
            raise KeyError(
                f"FairnessEarlyStopping: monitor {self.monitor!r} is not a probe metric "
                f"(known: {', '.join(sorted(k for k in metrics if k.endswith('gap')))})"
            )
        raw = float(metrics[self.monitor])
        decision = self._decide(step, metrics, units, raw)
        return replace(
            decision,
            value=abs(raw) if self.use_abs else raw,
            best=self.best if self.best_step is not None else None,
            best_step=self.best_step,
            wait=self.wait,
        )

    def _decide(self, step: int, metrics: Mapping[str, float], units: GapUnits | None, raw: float) -> StopDecision:
        """:meth:`step`'s decision on the watched value ``raw`` (the numbers are added by :meth:`step`)."""
        if step < self.warmup_steps:
            return self._go_on(f"step {step} is within warmup_steps={self.warmup_steps}")
        if not math.isfinite(raw):
            return self._go_on(f"{self.monitor} is {raw} at step {step}; probe ignored")
        if self.min_accuracy > 0:
            keys = self.accuracy_keys()
            accuracy = min(float(metrics[key]) for key in keys)
            if not accuracy >= self.min_accuracy:
                groups = " or ".join(key.rsplit("/", 1)[-1] for key in keys)
                return self._go_on(
                    f"accuracy {accuracy:.2f} on {groups} answers is below min_accuracy={self.min_accuracy}; probe ignored"
                )
        value = abs(raw) if self.use_abs else raw
        stale = self._stale_best()
        if value < self.best or stale:
            old_step, old_loss = self.best_step, self.loss_at_best
            self.best, self.best_step, self.wait, self.best_units = value, step, 0, units
            self.loss_at_best = self.latest_loss
            if stale:
                fell = f"from {old_loss:.4g} " if old_loss is not None else ""
                return self._go_on(
                    f"{self.monitor} {value:.4g} is the new best: held-out loss fell {fell}to {self.latest_loss:.4g} "
                    f"since the best at step {old_step} (rebase_loss_drop={self.rebase_loss_drop:g})"
                )
            return self._go_on(f"{self.monitor} {value:.4g} is the best so far")
        if self.test == "bootstrap":
            bound = growth_lower_bound(self.best_units, units, self.alpha, self.n_boot, use_abs=self.use_abs)  # type: ignore[arg-type]
            if not bound > self.min_delta:
                self.wait = 0
                return self._go_on(
                    f"{self.monitor} {value:.4g} above best {self.best:.4g}, but its growth's "
                    f"{1 - self.alpha:.0%} lower bound {bound:+.4g} is not above min_delta {self.min_delta:g}"
                )
        elif value <= self.best + self.min_delta:
            self.wait = 0
            return self._go_on(f"{self.monitor} {value:.4g} within min_delta of best {self.best:.4g}")
        if self.stop_on_significant_only:
            p = float(metrics[self.p_value_key])
            if not p < self.alpha:
                self.wait = 0
                return self._go_on(f"{self.monitor} grew but {self.p_value_key}={p:.3g} is not below {self.alpha}")
        self.wait += 1
        if self.wait < self.patience:
            return self._go_on(f"{self.monitor} exceeded best for {self.wait}/{self.patience} probes")
        by = "with confidence (paired bootstrap) " if self.test == "bootstrap" else ""
        gap_text = (
            f"{self.monitor} {value:.4g} exceeded best {self.best:.4g} + {self.min_delta:g} {by}"
            f"for {self.wait} probes (best at step {self.best_step})"
        )
        return self._decide_on_loss(step, gap_text)

    def _stale_best(self) -> bool:
        """Whether the held-out loss has fallen by more than ``rebase_loss_drop`` since the best step."""
        if self.rebase_loss_drop is None or self.best_step is None or self.latest_loss is None:
            return False
        if self.loss_at_best is None:
            return True
        at_best, drop = self.loss_at_best, self.rebase_loss_drop
        return self.latest_loss * (1 + drop) < at_best if at_best >= 0 else self.latest_loss < at_best * (1 + drop)

    def _decide_on_loss(self, step: int, gap_text: str) -> StopDecision:
        loss_name = self.loss_key or "held-out loss"
        if self.latest_loss is None:
            if self.require_loss:
                return self._go_on(f"{gap_text}, but no {loss_name} is known and require_loss=True")
            if not self._said_no_loss:
                log.warning("FairnessEarlyStopping: no %s has been logged; deciding on the fairness gap alone", loss_name)
                self._said_no_loss = True
            return self._stop(step, StopReason.GAP_GREW_NO_LOSS, f"stopping at step {step}: {gap_text}; no {loss_name} known")
        limit = self.best_loss * (1 + self.loss_tolerance) if self.best_loss >= 0 else self.best_loss * (1 - self.loss_tolerance)
        relation = f"{loss_name} {self.latest_loss:.4g} {{}} {self.loss_tolerance:.0%} of best {self.best_loss:.4g}"
        if self.latest_loss > limit:
            return self._go_on(f"{gap_text}, but {relation.format('not within')}")
        return self._stop(step, StopReason.GAP_GREW, f"stopping at step {step}: {gap_text}; {relation.format('within')}")

    def _go_on(self, message: str) -> StopDecision:
        return StopDecision(False, StopReason.NOT_STOPPED, message)

    def _stop(self, step: int, reason: StopReason, message: str) -> StopDecision:
        self.stopped_step, self.reason = step, reason
        return StopDecision(True, reason, message)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_step": self.best_step,
            "wait": self.wait,
            "best_loss": self.best_loss,
            "latest_loss": self.latest_loss,
            "stopped_step": self.stopped_step,
            "reason": self.reason.value,
            "said_no_loss": self._said_no_loss,
            "best_units": self.best_units.encode() if self.best_units is not None else None,
            "loss_at_best": self.loss_at_best,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_step = state["best_step"]
        self.wait = int(state["wait"])
        self.best_loss = float(state["best_loss"])
        self.latest_loss = state["latest_loss"]
        self.stopped_step = state["stopped_step"]
        self.reason = StopReason(state["reason"])
        self._said_no_loss = bool(state.get("said_no_loss", False))
        self.best_units = GapUnits.decode(state["best_units"]) if state.get("best_units") else None
        self.loss_at_best = state.get("loss_at_best")

    def __repr__(self) -> str:
        return (
            f"FairnessEarlyStopping(monitor={self.monitor!r}, min_delta={self.min_delta}, patience={self.patience}, "
            f"loss_tolerance={self.loss_tolerance}, warmup_steps={self.warmup_steps}, test={self.test!r}, "
            f"rebase_loss_drop={self.rebase_loss_drop})"
        )
