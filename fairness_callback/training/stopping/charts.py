"""Stop rules in units of the run's own noise: self-starting control charts on the watched gap.

A threshold in the metric's units (``FairnessEarlyStopping(min_delta=0.015)``) means something only
in the run it was chosen on: another model, learning rate or probe swings by another amount from
probe to probe. These rules estimate that swing from the run's own probes since the rule last
restarted (the model that reads the task) and decide in standard deviations of it.

Each new probe is standardised against the earlier in-control ones (Hawkins 1987, "Self-starting
cusum charts for location and scale"; Quesenberry 1991, Q charts): with ``n`` earlier values of
mean ``m`` and standard deviation ``s``, ``T = (x - m) / (s * sqrt(1 + 1/n))`` is Student-t with
``n - 1`` degrees of freedom for normal, independent probes, and ``u = Phi^-1(F_t(T))`` is then
standard normal whatever the gap's scale: a threshold in ``u`` has the same false-alarm rate in any
run. Neighbouring probes of one run are correlated (the model changes a little between them), and
a CUSUM sums them: with lag-1 correlation ``rho`` the variance of a sum of ``u`` grows by
``(1 + rho) / (1 - rho)``, so each ``u`` is divided by its square root (``rho`` estimated from the
baseline, bias-corrected and clipped to [0, 0.9], or given).

Values that push the chart up are held back from the baseline until it returns to zero, so a
drift is not absorbed into the level it is measured against (and in-control values still all join
it, so its spread is not underestimated).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ...probe.growth import GapUnits
from .decision import StopDecision
from .guards import MinAccuracy
from .registry import register_stop_rule
from .rule import GapRule

__all__ = ["SelfStartingBaseline", "SelfStartingCusum", "SelfStartingEwma", "SelfStartingRankCusum", "SequentialRankBaseline"]

#: |u| is clipped here: a value many standard deviations out counts as this many (the t-tail of a
#: few probes is heavy enough that one outlier should not decide alone).
U_LIMIT = 8.0


class SelfStartingBaseline:
    """The in-control probes since the rule's last restart, and the standardisation of a new one against them.

    Args:
        autocorrelation: lag-1 correlation of neighbouring probes to correct for; None estimates it
            from the baseline (once it has ``min_for_rho`` values).
    """

    min_for_rho: ClassVar[int] = 5

    def __init__(self, autocorrelation: float | None = None) -> None:
        if autocorrelation is not None and not 0 <= autocorrelation < 1:
            raise ValueError(f"autocorrelation must be in [0, 1) or None, got {autocorrelation}")
        self.autocorrelation = autocorrelation
        self.restart(None, None)

    def restart(self, step: int | None, loss: float | None) -> None:
        self.values: list[float] = []
        self.pending: list[float] = []  # values while the chart is off zero
        self.start_step = step
        self.loss_at_start = loss

    def accept(self, value: float | None = None) -> None:
        """The pending values (and ``value``) are in control: they join the baseline."""
        self.values.extend(self.pending)
        self.pending = []
        if value is not None:
            self.values.append(value)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    def rho(self) -> float:
        """The lag-1 correlation used: given, or estimated (0 until ``min_for_rho`` values)."""
        if self.autocorrelation is not None:
            return self.autocorrelation
        n = len(self.values)
        if n < self.min_for_rho:
            return 0.0
        m = self.mean
        deviations = [v - m for v in self.values]
        denominator = sum(d * d for d in deviations)
        if denominator == 0:
            return 0.0
        r1 = sum(a * b for a, b in zip(deviations, deviations[1:])) / denominator
        # E[r1] ~ rho - (1 + 3 rho) / n (Kendall 1954), solved for rho; then its lower 95% bound
        # (r1's standard error is about 1 / sqrt(n)): a few probes estimate rho so loosely that
        # the point estimate would take most of the chart's power for a correlation not there.
        return min(0.9, max(0.0, (n * r1 + 1) / (n - 3) - 2 / math.sqrt(n)))

    def standardise(self, value: float) -> float:
        """``value``'s ``u`` against the baseline (see the module docstring); needs 2 or more values."""
        n, m, s = len(self.values), self.mean, self.sd
        if not s > 0:
            u = 0.0 if value == m else math.copysign(U_LIMIT, value - m)
        else:
            from scipy import stats  # imported on first use: importing the package stays fast

            t = (value - m) / (s * math.sqrt(1 + 1 / n))
            # The tail away from the mean, so that far values do not round to probability 1.
            u = float(stats.norm.isf(stats.t.sf(t, n - 1))) if t > 0 else -float(stats.norm.isf(stats.t.cdf(t, n - 1)))
        u = max(-U_LIMIT, min(U_LIMIT, u))
        rho = self.rho()
        return u * math.sqrt((1 - rho) / (1 + rho))

    def describe(self) -> str:
        rho = f", lag-1 correlation {self.rho():.2f}" if self.rho() > 0 else ""
        return f"level {self.mean:+.4g}, sd {self.sd:.2g} over {len(self.values)} probes{rho}"

    def state_dict(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "pending": self.pending,
            "start_step": self.start_step,
            "loss_at_start": self.loss_at_start,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.values, self.pending = list(state["values"]), list(state["pending"])
        self.start_step, self.loss_at_start = state["start_step"], state["loss_at_start"]


class SequentialRankBaseline(SelfStartingBaseline):
    """A baseline that scores a new probe by its rank among the in-control ones, not by its distance
    (the sequential-rank CUSUM of Hawkins and Deng 2010, one observation at a time): with ``n``
    values, of which ``b`` are below and ``e`` equal to ``x``, ``u = Phi^-1((b + e/2 + 1/2) / (n + 1))``.
    Its false-alarm rate holds whatever the gap's distribution (one wild probe counts as the
    largest, never as many standard deviations), at the price of a slower start: with ``n``
    values no ``u`` passes ``Phi^-1((n + 1/2) / (n + 1))`` (1.28 sd for 4, 1.69 for 10).
    """

    def standardise(self, value: float) -> float:
        from scipy import stats  # imported on first use: importing the package stays fast

        below = sum(v < value for v in self.values) + 0.5 * sum(v == value for v in self.values)
        u = float(stats.norm.ppf((below + 0.5) / (len(self.values) + 1)))
        rho = self.rho()
        return u * math.sqrt((1 - rho) / (1 + rho))


class SelfStartingChart(GapRule):
    """The flow both charts share: a baseline of ``min_probes`` probes first, then each probe's ``u``
    fed to the chart (``_update``); a signal away from zero stops (the held-out loss allowing), one
    toward zero is accepted as the new level. The fairest probe since the restart is the ``best``.
    ``threshold`` (> 0, in standard deviations) is the signal level each chart compares against."""

    reference_word: ClassVar[str] = "baseline"
    baseline_class: ClassVar[type[SelfStartingBaseline]] = SelfStartingBaseline

    def __init__(
        self,
        monitor: str,
        threshold: float,
        min_probes: int,
        autocorrelation: float | None,
        ready_accuracy: float,
        min_shift: float,
        **guards: Any,
    ) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        super().__init__(monitor, **guards)
        if not min_shift >= 0:
            raise ValueError(f"min_shift must be >= 0, got {min_shift}")
        self.min_shift = min_shift
        if min_probes < 2:
            raise ValueError(f"min_probes must be >= 2 (a standard deviation needs two probes), got {min_probes}")
        if not 0 <= ready_accuracy <= 1:
            raise ValueError(f"ready_accuracy must be in [0, 1], got {ready_accuracy}")
        self.min_probes = min_probes
        self.baseline = self.baseline_class(autocorrelation)
        self.ready = MinAccuracy(ready_accuracy, monitor)
        self._waits: str | None = None  # why the current probe cannot start a baseline
        self.reset()

    @property
    def ready_accuracy(self) -> float:
        return self.ready.threshold

    def check(self, metric_keys: Iterable[str], gap_groups: tuple[str, ...] | None = None, loss_key: str | None = None) -> None:
        super().check(metric_keys, gap_groups, loss_key)
        if gap_groups is not None:
            self.ready.groups = tuple(gap_groups)

    def step(self, step: int, metrics: Mapping[str, float], units: GapUnits | None = None) -> StopDecision:
        self._waits = self._not_ready(metrics)
        return super().step(step, metrics, units)

    def _not_ready(self, metrics: Mapping[str, float]) -> str | None:
        """Why a baseline cannot start at a probe with ``metrics``: its model does not read the task yet
        (accuracy on either gap group's prompts below ``ready_accuracy``); None where it can, or where
        the probe has no such accuracies."""
        if self.ready.threshold <= 0 or not set(self.ready.keys()).issubset(metrics):
            return None
        accuracy, groups = self.ready.lowest(metrics)
        if not accuracy < self.ready.threshold:
            return None
        return f"accuracy {accuracy:.2f} on {groups} answers is below ready_accuracy={self.ready.threshold:g}"

    @property
    def autocorrelation(self) -> float | None:
        return self.baseline.autocorrelation

    def reset(self) -> None:
        super().reset()
        self.baseline.restart(None, None)
        self.best: float = math.inf
        self.best_step: int | None = None
        self.wait = 0
        self._restart_chart()

    def _restart_chart(self) -> None:
        self._reset_chart()
        self.since: dict[int, list[float]] = {1: [], -1: []}  # the values since each side left rest

    # -- what each chart writes -----------------------------------------------------------------
    def _reset_chart(self) -> None:
        raise NotImplementedError

    def _update(self, u: float) -> None:
        """Feed one standardised probe to the chart."""
        raise NotImplementedError

    def _active(self, side: int) -> bool:
        """Whether the chart is off its resting state on ``side`` (+1: up, -1: down); at rest on both
        sides, the pending values join the baseline."""
        raise NotImplementedError

    def _signal(self) -> int:
        """+1: the chart signals a rise, -1 a fall (only with ``use_abs``), 0: none."""
        raise NotImplementedError

    def _statistic(self) -> float:
        """The chart's value, signed (a rise positive), in standard deviations."""
        raise NotImplementedError

    def _says(self, direction: int) -> str:
        """What the chart's signal is, in words with its numbers: ``"CUSUM 5.2 sd (threshold 4)"``."""
        raise NotImplementedError

    # -- the shared flow ------------------------------------------------------------------------
    def _reference(self) -> tuple[bool, int | None, float | None]:
        return self.baseline.start_step is not None, self.baseline.start_step, self.baseline.loss_at_start

    def _restart(self, step: int, value: float, raw: float, units: GapUnits | None, why: str) -> str:
        self.baseline.restart(step, self.latest_loss)
        self.best, self.best_step, self.wait = math.inf, None, 0
        self._restart_chart()
        if self._waits is not None:
            return f"{self.monitor} {raw:+.4g}: the baseline starts over ({why}) at the first probe whose model reads the task ({self._waits})"
        self.baseline.accept(raw)
        self.best, self.best_step = value, step
        return f"{self.monitor} {raw:+.4g} starts a new baseline: {why}"

    def _judge(
        self, step: int, value: float, raw: float, metrics: Mapping[str, float], units: GapUnits | None
    ) -> tuple[bool, str]:
        if not self.baseline.values and self._waits is not None:
            return False, f"{self.monitor} {raw:+.4g}: no baseline yet, its model does not read the task ({self._waits})"
        if not self.baseline.values:
            self.baseline.restart(step, self.latest_loss)
        if value < self.best:
            self.best, self.best_step = value, step
        start, count = self.baseline.start_step, len(self.baseline.values)
        if count < self.min_probes:
            self.baseline.accept(raw)
            return False, f"{self.monitor} {raw:+.4g}: baseline {count + 1}/{self.min_probes} probes since step {start}"
        self._update(self.baseline.standardise(raw))
        for side, values in self.since.items():
            if self._active(side):
                values.append(raw)
            else:
                values.clear()
        if not any(self.since.values()):
            self.wait = 0
            self.baseline.accept(raw)
            return False, f"{self.monitor} {raw:+.4g} in control ({self.baseline.describe()} since step {start})"
        self.wait = max(len(values) for values in self.since.values())
        self.baseline.pending.append(raw)
        direction = self._signal()
        if direction == 0:
            return False, f"{self.monitor} {raw:+.4g}: {self._says(0)}; {self.wait} probe(s) off its level"
        level, shifted, sd = self.baseline.mean, statistics.fmean(self.since[direction]), self.baseline.sd
        away = abs(shifted) - abs(level) if self.use_abs else shifted - level
        if away < self.min_shift * sd:
            # The gap moved toward zero (a fairer model), or away by less than min_shift standard
            # deviations (a baseline of few probes that underestimated the spread): not a stop; the
            # values join the baseline, whose level and spread then follow.
            self.baseline.accept()
            self._restart_chart()
            self.wait = 0
            if away <= 0:
                return False, f"{self.monitor} {raw:+.4g} moved toward zero from its level {level:+.4g}; the baseline takes it"
            return False, (
                f"{self.monitor} {raw:+.4g}: {self._says(direction)}, but its mean {shifted:+.4g} since the chart left zero is "
                f"within min_shift={self.min_shift:g} sd ({sd:.2g}) of its level {level:+.4g}; the baseline takes it"
            )
        moved = "rose above" if direction > 0 else "fell below"
        return True, (
            f"{self.monitor} {moved} its level since step {start}: {self._says(direction)}, now {raw:+.4g} "
            f"({self.baseline.describe()}); fairest step {self.best_step} ({self.best:.4g})"
        )

    def _numbers(self) -> dict[str, Any]:
        return {
            "best": self.best if self.best_step is not None else None,
            "best_step": self.best_step,
            "wait": self.wait,
            "statistic": self._statistic(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "baseline": self.baseline.state_dict(),
            "best": self.best,
            "best_step": self.best_step,
            "wait": self.wait,
            "chart": self._chart_state(),
            "since": {"up": self.since[1], "down": self.since[-1]},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline.load_state_dict(state["baseline"])
        self.best, self.best_step, self.wait = float(state["best"]), state["best_step"], int(state["wait"])
        self._load_chart_state(state["chart"])
        self.since = {1: list(state["since"]["up"]), -1: list(state["since"]["down"])}

    def _chart_state(self) -> dict[str, float]:
        raise NotImplementedError

    def _load_chart_state(self, state: Mapping[str, float]) -> None:
        raise NotImplementedError


@register_stop_rule("cusum")
class SelfStartingCusum(SelfStartingChart):
    """Stop when the gap's self-starting CUSUM passes ``threshold`` standard deviations of the run's
    own probe-to-probe variation, while held-out loss stays within tolerance.

    The first ``min_probes`` probes after a (re)start are the baseline; from then on each probe's
    ``u`` (its distance from the baseline's level in the baseline's standard deviations, see the
    module docstring) is summed in two one-sided CUSUMs, ``up = max(0, up + u - allowance)`` and
    ``down = max(0, down - u - allowance)``. A stop needs ``up`` (or, with ``use_abs``, ``down``)
    above ``threshold`` and the values since the chart left zero farther from zero than the level by
    ``min_shift`` standard deviations.
    ``allowance`` 0.5 tunes the chart to a shift of one standard deviation; with independent
    normal probes, ``threshold`` 4 gives one false alarm in about 170 in-control probes per side,
    5 (the default) in about 460 (Hawkins and Olwell 1998); correlated probes raise the rate (the
    correction above takes part of it back), measured in docs/stopping.md.

    The stop line says it in the run's units: ``"jsdp/gap rose above its level since step 500:
    CUSUM 5.3 sd (threshold 5), now +0.086 (level +0.003, sd 0.011 over 9 probes); fairest step 450"``.

    Args:
        monitor: metric key of the probe to watch (the signed gap is charted).
        threshold: ``h``, in standard deviations.
        allowance: ``k``, in standard deviations.
        min_probes: baseline probes after a (re)start before the chart acts (>= 2).
        autocorrelation: lag-1 correlation of neighbouring probes to correct for; None: estimated
            from the baseline; 0: none.
        ready_accuracy: a baseline starts only at a probe whose model reads the task: accuracy at
            least this on each gap group's prompts (a model that answers one option everywhere
            swings by far more than it will later, and would make the baseline blind); 0, or a
            probe without accuracies: at once. Unlike ``min_accuracy`` it skips no probe once the
            baseline has started, so a bias that costs accuracy is still seen.
        min_shift: a signal stops only if the mean of the values since the chart left zero is
            farther from zero than the level by at least this many of the baseline's standard
            deviations; otherwise (a fairer model, or a baseline of few probes that underestimated
            the spread) the values join the baseline.
        use_abs, warmup_steps, min_accuracy, loss_key, loss_tolerance, require_loss,
        rebase_loss_drop: the guards every rule takes (:class:`~.rule.GapRule`); here the reference
            that ``rebase_loss_drop`` restarts is the baseline.
    """

    def __init__(
        self,
        monitor: str = "jsdp/gap",
        threshold: float = 5.0,
        allowance: float = 0.5,
        min_probes: int = 4,
        autocorrelation: float | None = None,
        ready_accuracy: float = 0.5,
        min_shift: float = 1.0,
        use_abs: bool = True,
        warmup_steps: int = 0,
        min_accuracy: float = 0.0,
        loss_key: str | None = None,
        loss_tolerance: float = 0.02,
        require_loss: bool = False,
        rebase_loss_drop: float | None = 0.5,
    ) -> None:
        if not allowance >= 0:
            raise ValueError(f"allowance must be >= 0, got {allowance}")
        self.allowance = allowance
        super().__init__(
            monitor,
            threshold,
            min_probes,
            autocorrelation,
            ready_accuracy,
            min_shift,
            use_abs=use_abs,
            warmup_steps=warmup_steps,
            min_accuracy=min_accuracy,
            loss_key=loss_key,
            loss_tolerance=loss_tolerance,
            require_loss=require_loss,
            rebase_loss_drop=rebase_loss_drop,
        )

    def _reset_chart(self) -> None:
        self.up = self.down = 0.0

    def _update(self, u: float) -> None:
        self.up = max(0.0, self.up + u - self.allowance)
        self.down = max(0.0, self.down - u - self.allowance) if self.use_abs else 0.0

    def _active(self, side: int) -> bool:
        return (self.up if side > 0 else self.down) > 0

    def _signal(self) -> int:
        if self.up > self.threshold:
            return 1
        return -1 if self.down > self.threshold else 0

    def _statistic(self) -> float:
        return self.up if self.up >= self.down else -self.down

    def _says(self, direction: int) -> str:
        value = self.down if direction < 0 or (direction == 0 and self.down > self.up) else self.up
        return f"CUSUM {value:.2f} sd (threshold {self.threshold:g})"

    def _chart_state(self) -> dict[str, float]:
        return {"up": self.up, "down": self.down}

    def _load_chart_state(self, state: Mapping[str, float]) -> None:
        self.up, self.down = float(state["up"]), float(state["down"])

    def __repr__(self) -> str:
        return (
            f"SelfStartingCusum(threshold={self.threshold}, allowance={self.allowance}, min_probes={self.min_probes}, "
            f"autocorrelation={self.autocorrelation}, ready_accuracy={self.ready_accuracy}, min_shift={self.min_shift}, {self._guard_arguments()})"
        )


@register_stop_rule("ewma")
class SelfStartingEwma(SelfStartingChart):
    """Stop when an EWMA of the probes' ``u`` (see the module docstring) passes ``threshold`` times its
    standard deviation, while held-out loss stays within tolerance.

    ``z = smoothing * u + (1 - smoothing) * z``; its standard deviation after ``i`` charted probes
    is ``sqrt(smoothing / (2 - smoothing) * (1 - (1 - smoothing) ** (2 i)))``. The chart is at rest
    (its pending values join the baseline) while ``|z|`` is within half a standard deviation of
    ``u``'s scale times that factor. An alternative to :class:`SelfStartingCusum` measured in the
    benchmark (docs/stopping.md); the same baseline, guards and arguments otherwise.

    Args:
        monitor: metric key of the probe to watch (the signed gap is charted).
        threshold: ``L``, in standard deviations of ``z``.
        smoothing: ``lambda`` in (0, 1].
        min_probes, autocorrelation, ready_accuracy, min_shift, use_abs, warmup_steps, min_accuracy, loss_key,
        loss_tolerance, require_loss, rebase_loss_drop: as for :class:`SelfStartingCusum`.
    """

    def __init__(
        self,
        monitor: str = "jsdp/gap",
        threshold: float = 3.0,
        smoothing: float = 0.3,
        min_probes: int = 4,
        autocorrelation: float | None = None,
        ready_accuracy: float = 0.5,
        min_shift: float = 1.0,
        use_abs: bool = True,
        warmup_steps: int = 0,
        min_accuracy: float = 0.0,
        loss_key: str | None = None,
        loss_tolerance: float = 0.02,
        require_loss: bool = False,
        rebase_loss_drop: float | None = 0.5,
    ) -> None:
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.smoothing = smoothing
        super().__init__(
            monitor,
            threshold,
            min_probes,
            autocorrelation,
            ready_accuracy,
            min_shift,
            use_abs=use_abs,
            warmup_steps=warmup_steps,
            min_accuracy=min_accuracy,
            loss_key=loss_key,
            loss_tolerance=loss_tolerance,
            require_loss=require_loss,
            rebase_loss_drop=rebase_loss_drop,
        )

    def _reset_chart(self) -> None:
        self.z, self.charted = 0.0, 0

    def _sd(self) -> float:
        lam = self.smoothing
        return math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * max(1, self.charted))))

    def _update(self, u: float) -> None:
        self.z = self.smoothing * u + (1 - self.smoothing) * self.z
        self.charted += 1

    def _active(self, side: int) -> bool:
        return side * self.z > 0.5 * self._sd()

    def _signal(self) -> int:
        limit = self.threshold * self._sd()
        if self.z > limit:
            return 1
        return -1 if self.use_abs and self.z < -limit else 0

    def _statistic(self) -> float:
        return self.z / self._sd()

    def _says(self, direction: int) -> str:
        return f"EWMA {self._statistic():+.2f} sd (threshold {self.threshold:g})"

    def _chart_state(self) -> dict[str, float]:
        return {"z": self.z, "charted": self.charted}

    def _load_chart_state(self, state: Mapping[str, float]) -> None:
        self.z, self.charted = float(state["z"]), int(state["charted"])

    def __repr__(self) -> str:
        return (
            f"SelfStartingEwma(threshold={self.threshold}, smoothing={self.smoothing}, min_probes={self.min_probes}, "
            f"autocorrelation={self.autocorrelation}, ready_accuracy={self.ready_accuracy}, min_shift={self.min_shift}, {self._guard_arguments()})"
        )


@register_stop_rule("rank-cusum")
class SelfStartingRankCusum(SelfStartingCusum):
    """:class:`SelfStartingCusum` on sequential ranks (:class:`SequentialRankBaseline`): each probe
    scored by its rank among the in-control ones, so that a heavy-tailed gap (single wild probes)
    does not raise false alarms, and a shift needs several probes in a row to stop. The same
    arguments; ``threshold`` defaults to 3 because rank scores are bounded (measured in
    docs/stopping.md).
    """

    baseline_class: ClassVar[type[SelfStartingBaseline]] = SequentialRankBaseline

    def __init__(
        self,
        monitor: str = "jsdp/gap",
        threshold: float = 3.0,
        allowance: float = 0.5,
        min_probes: int = 4,
        autocorrelation: float | None = None,
        ready_accuracy: float = 0.5,
        min_shift: float = 1.0,
        use_abs: bool = True,
        warmup_steps: int = 0,
        min_accuracy: float = 0.0,
        loss_key: str | None = None,
        loss_tolerance: float = 0.02,
        require_loss: bool = False,
        rebase_loss_drop: float | None = 0.5,
    ) -> None:
        super().__init__(
            monitor,
            threshold,
            allowance,
            min_probes,
            autocorrelation,
            ready_accuracy,
            min_shift,
            use_abs,
            warmup_steps,
            min_accuracy,
            loss_key,
            loss_tolerance,
            require_loss,
            rebase_loss_drop,
        )

    def __repr__(self) -> str:
        return "SelfStartingRankCusum" + super().__repr__().removeprefix("SelfStartingCusum")
