"""The rule "the gap rose above its best": :class:`FairnessEarlyStopping` (``--stop-rule "rule=best,..."``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from ...probe.growth import GapUnits, growth_lower_bound
from ...probe.keys import GAP_GROUPS, MetricKey
from .registry import register_stop_rule
from .rule import GapRule

__all__ = ["FairnessEarlyStopping"]


@register_stop_rule("best")
class FairnessEarlyStopping(GapRule):
    """Stop training when the fairness gap grows above its best while held-out loss stays within tolerance.

    The rule: track the best (smallest) monitored value seen; count consecutive probes where it
    exceeds ``best + min_delta``; when the count reaches ``patience`` and the latest held-out loss
    is within ``loss_tolerance`` (relative) of the best held-out loss seen, stop. With
    ``test="bootstrap"`` a probe counts as worse only when the gap's growth since the best step
    exceeds ``min_delta`` with confidence: a paired bootstrap over sentences (the same sentences
    resampled at both probes, :mod:`fairness_callback.probe.growth`) whose one-sided ``1 - alpha``
    lower bound of the growth is above ``min_delta``.

    ``min_delta`` is in the monitored metric's units: the default was chosen on the demo's run
    (docs/stopping.md); another run's gap may swing more or less from probe to probe.

    Args:
        monitor: metric key of the probe to watch, e.g. ``"jsdp/gap"``, ``"ar/gap"``, ``"pro/jsdp/gap"``.
        min_delta: how far above the best a value must be to count as worse (default 0.015: with
            ``rebase_loss_drop=0.5`` and ``patience=3``, the defaults chosen from the measured
            false stops, detections and delays of docs/stopping.md).
        patience: consecutive worse probes before stopping.
        stop_on_significant_only: a probe counts as worse only if male and female answers differ
            significantly (Mann-Whitney ``p < alpha`` on the monitored metric).
        alpha: significance level for ``stop_on_significant_only`` and ``test="bootstrap"``.
        test: ``"point"`` compares the gap's values; ``"bootstrap"`` tests its growth (see above;
            the monitor must be a ``.../<ar|jsdp>/gap`` or ``abs_gap`` key, and ``step`` gets the
            probe's per-sentence values, as the tracker passes them).
        n_boot: bootstrap resamples of ``test="bootstrap"`` (seeded: every rank decides alike).
        use_abs, warmup_steps, min_accuracy, loss_key, loss_tolerance, require_loss,
        rebase_loss_drop: the guards every rule takes (:class:`~.rule.GapRule`); here the reference
            that ``rebase_loss_drop`` restarts is the best (default 0.5: the held-out loss has fallen
            by a third since the best step).
    """

    reference_word: ClassVar[str] = "best"

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
        super().__init__(
            monitor,
            use_abs=use_abs,
            warmup_steps=warmup_steps,
            min_accuracy=min_accuracy,
            loss_key=loss_key,
            loss_tolerance=loss_tolerance,
            require_loss=require_loss,
            rebase_loss_drop=rebase_loss_drop,
        )
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if test not in ("point", "bootstrap"):
            raise ValueError(f"test must be 'point' or 'bootstrap', got {test!r}")
        if n_boot < 100:
            raise ValueError(f"n_boot must be >= 100, got {n_boot}")
        parsed = MetricKey.try_parse(monitor)
        if test == "bootstrap" and (parsed is None or not parsed.is_gap):
            raise ValueError(
                f"FairnessEarlyStopping(test='bootstrap') needs a '.../<ar|jsdp>/gap' or '.../abs_gap' "
                f"monitor (a difference of two groups' means over sentences), got monitor={monitor!r}"
            )
        self.min_delta = min_delta
        self.patience = patience
        self.stop_on_significant_only = stop_on_significant_only
        self.alpha = alpha
        self.test = test
        self.n_boot = n_boot
        self.reset()

    @property
    def needs_units(self) -> bool:
        return self.test == "bootstrap"

    def reset(self) -> None:
        super().reset()
        self.best: float = math.inf
        self.best_units: GapUnits | None = None  # the best step's per-sentence values (test="bootstrap")
        self.best_step: int | None = None
        self.loss_at_best: float | None = None  # the latest held-out loss when the best was set
        self.wait = 0

    @property
    def p_value_key(self) -> str:
        """The Mann-Whitney key that goes with ``monitor``: ``"jsdp/gap"`` and ``"jsdp/abs_gap"`` ->
        ``"mwu_p/jsdp"``, ``"religion/ar/gap"`` -> ``"religion/mwu_p/ar"``."""
        monitor = MetricKey.try_parse(self.monitor)
        if monitor is None or monitor.group not in GAP_GROUPS or monitor.part:
            raise ValueError(
                f"FairnessEarlyStopping(stop_on_significant_only=True) needs a '.../<metric>/gap' or "
                f"'.../<metric>/abs_gap' monitor (a gap between two groups has a Mann-Whitney p), "
                f"got monitor={self.monitor!r}"
            )
        return str(monitor.sibling("mwu_p", monitor.kind))

    def accuracy_keys(self) -> tuple[str, ...]:
        """The accuracy keys that ``min_accuracy`` reads (see :class:`~.guards.MinAccuracy`)."""
        return self.accuracy.keys()

    def check(self, metric_keys: Iterable[str], gap_groups: tuple[str, ...] | None = None, loss_key: str | None = None) -> None:
        """See :meth:`GapRule.check`; also ValueError for a p-value rule on a metric without a p-value."""
        keys = set(metric_keys)
        super().check(keys, gap_groups, loss_key)
        if self.stop_on_significant_only and self.p_value_key not in keys:
            raise ValueError(
                f"FairnessEarlyStopping(stop_on_significant_only=True): monitor {self.monitor!r} has no "
                f"p-value {self.p_value_key!r}; p-values: {', '.join(sorted(k for k in keys if '/mwu_p/' in '/' + k))}"
            )

    def _reference(self) -> tuple[bool, int | None, float | None]:
        return self.best_step is not None, self.best_step, self.loss_at_best

    def _set_best(self, step: int, value: float, units: GapUnits | None) -> None:
        self.best, self.best_step, self.wait, self.best_units = value, step, 0, units
        self.loss_at_best = self.latest_loss

    def _restart(self, step: int, value: float, raw: float, units: GapUnits | None, why: str) -> str:
        self._set_best(step, value, units)
        return f"{self.monitor} {value:.4g} is the new best: {why}"

    def _judge(
        self, step: int, value: float, raw: float, metrics: Mapping[str, float], units: GapUnits | None
    ) -> tuple[bool, str]:
        if value < self.best:
            self._set_best(step, value, units)
            return False, f"{self.monitor} {value:.4g} is the best so far"
        if self.test == "bootstrap":
            assert self.best_units is not None and units is not None  # set with the best; step() requires units
            bound = growth_lower_bound(self.best_units, units, self.alpha, self.n_boot, use_abs=self.use_abs)
            if not bound > self.min_delta:
                self.wait = 0
                return False, (
                    f"{self.monitor} {value:.4g} above best {self.best:.4g}, but its growth's "
                    f"{1 - self.alpha:.0%} lower bound {bound:+.4g} is not above min_delta {self.min_delta:g}"
                )
        elif value <= self.best + self.min_delta:
            self.wait = 0
            return False, f"{self.monitor} {value:.4g} within min_delta of best {self.best:.4g}"
        if self.stop_on_significant_only:
            p = float(metrics[self.p_value_key])
            if not p < self.alpha:
                self.wait = 0
                return False, f"{self.monitor} grew but {self.p_value_key}={p:.3g} is not below {self.alpha}"
        self.wait += 1
        if self.wait < self.patience:
            return False, f"{self.monitor} exceeded best for {self.wait}/{self.patience} probes"
        by = "with confidence (paired bootstrap) " if self.test == "bootstrap" else ""
        return True, (
            f"{self.monitor} {value:.4g} exceeded best {self.best:.4g} + {self.min_delta:g} {by}"
            f"for {self.wait} probes (best at step {self.best_step})"
        )

    def _numbers(self) -> dict[str, Any]:
        return {"best": self.best if self.best_step is not None else None, "best_step": self.best_step, "wait": self.wait}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "best": self.best,
            "best_step": self.best_step,
            "wait": self.wait,
            "best_units": self.best_units.encode() if self.best_units is not None else None,
            "loss_at_best": self.loss_at_best,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.best = float(state["best"])
        self.best_step = state["best_step"]
        self.wait = int(state["wait"])
        self.best_units = GapUnits.decode(state["best_units"]) if state.get("best_units") else None
        self.loss_at_best = state.get("loss_at_best")

    def __repr__(self) -> str:
        return (
            f"FairnessEarlyStopping(monitor={self.monitor!r}, min_delta={self.min_delta}, patience={self.patience}, "
            f"loss_tolerance={self.loss_tolerance}, warmup_steps={self.warmup_steps}, test={self.test!r}, "
            f"rebase_loss_drop={self.rebase_loss_drop})"
        )
