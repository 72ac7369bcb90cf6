"""The stop-rule type: the :class:`StopRule` protocol the tracker works with, and :class:`GapRule`,
the base of the package's rules (one watched gap, the guards of ``guards.py``, one decision flow).

A rule of one's own is one class: implement :class:`StopRule` (or subclass :class:`GapRule` and
write ``_judge``, ``_restart``, ``_reference`` and the state of its own), register it with
:func:`~fairness_callback.training.stopping.registry.register_stop_rule` so ``--stop-rule
"rule=NAME,..."`` builds it, and test it (docs/contributing.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Protocol, runtime_checkable

from ...probe.growth import GapUnits
from ...probe.keys import GAP_GROUPS, MetricKey
from .decision import StopDecision, StopReason
from .guards import HeldOutLoss, MinAccuracy, RebaseOnLossDrop, Warmup

__all__ = ["GapRule", "StopRule"]


@runtime_checkable
class StopRule(Protocol):
    """What the tracker, the adapters, ``--stop-rule``, the rule replay and the benchmark need of a stop rule.

    - ``monitor``: the probe metric key it watches (``"jsdp/gap"``, ``"gender/jsdp/gap"``).
    - ``loss_key``: the held-out loss it reads; None: the run's (``eval_loss`` / ``val_loss``),
      which :meth:`check` is told.
    - ``needs_units``: whether :meth:`step` wants the monitored gap's per-sentence values.
    - :meth:`check`: before any probe, against the keys the probes will produce (ValueError naming
      what does not fit); ``gap_groups`` are the monitored task's two gap groups, ``loss_key`` the
      held-out loss the run logs (what :meth:`update_loss` will be given).
    - :meth:`update_loss` whenever the trainer evaluates; :meth:`step` at each probe, returning a
      :class:`StopDecision` whose :class:`StopReason` has a priority (how ranks' reasons combine).
    - :meth:`reset`, :meth:`state_dict`, :meth:`load_state_dict`: a new run, and a resumed one.
    """

    monitor: str
    loss_key: str | None

    @property
    def needs_units(self) -> bool: ...

    def check(
        self, metric_keys: Iterable[str], gap_groups: tuple[str, ...] | None = None, loss_key: str | None = None
    ) -> None: ...

    def update_loss(self, loss: float) -> None: ...

    def step(self, step: int, metrics: Mapping[str, float], units: GapUnits | None = None) -> StopDecision: ...

    def reset(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class GapRule:
    """Base of the rules that watch one gap: the guards, the held-out loss and the decision flow.

    At each probe, in order: a probe within ``warmup_steps``, with a non-finite value, or below
    ``min_accuracy`` is ignored; a reference gone stale (:class:`~.guards.RebaseOnLossDrop`) is
    restarted at this probe; otherwise the rule's own test (``_judge``) says whether the gap grew
    enough to stop, and the held-out loss (:class:`~.guards.HeldOutLoss`) may still forbid it.

    Args (every rule of the package takes these, besides its own):
        monitor: metric key of the probe to watch, e.g. ``"jsdp/gap"``, ``"ar/gap"``, ``"pro/jsdp/gap"``.
        use_abs: a gap in either direction is unfair (True); False watches the signed value growing.
        warmup_steps: probes before this step are ignored.
        min_accuracy: ignore probes where the accuracy on either gap group's prompts is below this
            (0: ignore none; see :class:`~.guards.MinAccuracy`).
        loss_key: name of the held-out loss; None: the run's, given to :meth:`check` (``"eval_loss"``
            for the HF Trainer, ``"val_loss"`` for Lightning).
        loss_tolerance: stop only if ``latest_loss <= best_loss * (1 + loss_tolerance)``.
        require_loss: never stop without a held-out loss (by default it says so once and decides on
            the gap alone).
        rebase_loss_drop: once the held-out loss has fallen by more than this fraction since the
            rule's reference was set, the reference restarts at the current probe (see
            :class:`~.guards.RebaseOnLossDrop`); None: never.
    """

    #: The rule's name for ``--stop-rule "rule=NAME"`` (set by ``register_stop_rule``).
    name: ClassVar[str] = ""
    #: The reasons this rule stops with (the tracker turns the all-reduced priority back into one of them).
    reasons: ClassVar[tuple[StopReason, ...]] = (StopReason.GAP_GREW, StopReason.GAP_GREW_NO_LOSS)
    #: What the reference is called in messages ("best", "baseline").
    reference_word: ClassVar[str] = "reference"

    def __init__(
        self,
        monitor: str = "jsdp/gap",
        *,
        use_abs: bool = True,
        warmup_steps: int = 0,
        min_accuracy: float = 0.0,
        loss_key: str | None = None,
        loss_tolerance: float = 0.02,
        require_loss: bool = False,
        rebase_loss_drop: float | None = 0.5,
    ) -> None:
        self.monitor = monitor
        self.use_abs = use_abs
        self.warmup = Warmup(warmup_steps)
        self.accuracy = MinAccuracy(min_accuracy, monitor)
        self.loss = HeldOutLoss(loss_key, loss_tolerance, require_loss)
        self.rebase = RebaseOnLossDrop(rebase_loss_drop)

    # -- the guards' arguments, as attributes (repr, tests, --stop-rule) ------------------------
    @property
    def loss_key(self) -> str | None:
        return self.loss.key

    @property
    def warmup_steps(self) -> int:
        return self.warmup.steps

    @property
    def min_accuracy(self) -> float:
        return self.accuracy.threshold

    @property
    def loss_tolerance(self) -> float:
        return self.loss.tolerance

    @property
    def require_loss(self) -> bool:
        return self.loss.required

    @property
    def rebase_loss_drop(self) -> float | None:
        return self.rebase.drop

    @property
    def latest_loss(self) -> float | None:
        return self.loss.latest

    @property
    def best_loss(self) -> float:
        return self.loss.best

    @property
    def needs_units(self) -> bool:
        return False

    # -- the protocol ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.loss.reset()
        self.stopped_step: int | None = None
        self.reason = StopReason.NOT_STOPPED

    def check(self, metric_keys: Iterable[str], gap_groups: tuple[str, ...] | None = None, loss_key: str | None = None) -> None:
        """Check this rule against the keys the probes will produce, before any probe runs.

        Raises ValueError naming the known keys for an unknown ``monitor``, or ``min_accuracy``
        where the probe has no such accuracies. ``gap_groups``: the monitored probe's task's gap
        groups, used by ``min_accuracy`` from now on; ``loss_key``: the run's held-out loss, the
        one this rule reads unless it was given its own.
        """
        if self.loss.key is None:
            self.loss.key = loss_key
        keys = set(metric_keys)
        if self.monitor not in keys:
            parsed = [MetricKey.try_parse(k) for k in keys]
            gaps = sorted(str(k) for k in parsed if k is not None and k.group in (*GAP_GROUPS, "lean") and not k.part)
            raise ValueError(
                f"{type(self).__name__}(monitor={self.monitor!r}): the probes have no such metric; "
                f"their gap metrics: {', '.join(gaps)} (every metric: ProbeResult.metrics)"
            )
        self.accuracy.check(keys, gap_groups, type(self).__name__)

    def update_loss(self, loss: float) -> None:
        """Record a held-out loss (call it whenever the trainer evaluates)."""
        self.loss.update(loss)

    def step(self, step: int, metrics: Mapping[str, float], units: GapUnits | None = None) -> StopDecision:
        """Feed one probe's metrics (and, where :attr:`needs_units`, the monitored gap's per-sentence
        ``units``, e.g. ``probe.gap_units(result, monitor)``); returns whether to stop now, and why."""
        if self.needs_units and units is None:
            raise ValueError(
                f"{self!r}.step needs the gap's per-sentence values: units=probe.gap_units(result, {self.monitor!r})"
            )
        if self.monitor not in metrics:
            raise KeyError(
                f"{type(self).__name__}: monitor {self.monitor!r} is not a probe metric "
                f"(known: {', '.join(sorted(k for k in metrics if k.endswith('gap')))})"
            )
        raw = float(metrics[self.monitor])
        decision = self._decide(step, metrics, units, raw)
        return replace(decision, value=abs(raw) if self.use_abs else raw, **self._numbers())

    def _decide(self, step: int, metrics: Mapping[str, float], units: GapUnits | None, raw: float) -> StopDecision:
        skip = self.warmup.skip(step)
        if skip is None and not math.isfinite(raw):
            skip = f"{self.monitor} is {raw} at step {step}; probe ignored"
        if skip is None:
            skip = self.accuracy.skip(metrics)
        if skip is not None:
            return self._go_on(skip)
        value = abs(raw) if self.use_abs else raw
        has_reference, reference_step, loss_at_reference = self._reference()
        if self.rebase.stale(loss_at_reference, self.loss.latest, has_reference):
            why = self.rebase.why(loss_at_reference, self.loss.latest, reference_step, self.reference_word)
            return self._go_on(self._restart(step, value, raw, units, why))
        grew, text = self._judge(step, value, raw, metrics, units)
        if not grew:
            return self._go_on(text)
        veto = self.loss.veto(text)
        if veto is not None:
            return self._go_on(veto)
        if self.loss.latest is None:
            return self._stop(step, StopReason.GAP_GREW_NO_LOSS, f"stopping at step {step}: {text}; no {self.loss.name} known")
        return self._stop(step, StopReason.GAP_GREW, f"stopping at step {step}: {text}; {self.loss.relation('within')}")

    # -- what a rule writes ---------------------------------------------------------------------
    def _judge(
        self, step: int, value: float, raw: float, metrics: Mapping[str, float], units: GapUnits | None
    ) -> tuple[bool, str]:
        """The rule's test at an admitted probe: (the gap grew enough to stop, the sentence that says so)."""
        raise NotImplementedError

    def _restart(self, step: int, value: float, raw: float, units: GapUnits | None, why: str) -> str:
        """Restart the reference at this probe (its loss is :attr:`latest_loss`); returns the message."""
        raise NotImplementedError

    def _reference(self) -> tuple[bool, int | None, float | None]:
        """(whether a reference is set, its step, the held-out loss when it was set)."""
        raise NotImplementedError

    def _numbers(self) -> dict[str, Any]:
        """The decision's ``best``, ``best_step``, ``wait`` and ``statistic`` after this probe."""
        raise NotImplementedError

    def _go_on(self, message: str) -> StopDecision:
        return StopDecision(False, StopReason.NOT_STOPPED, message)

    def _stop(self, step: int, reason: StopReason, message: str) -> StopDecision:
        self.stopped_step, self.reason = step, reason
        return StopDecision(True, reason, message)

    def state_dict(self) -> dict[str, Any]:
        return {**self.loss.state_dict(), "stopped_step": self.stopped_step, "reason": self.reason.value}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.loss.load_state_dict(state)
        self.stopped_step = state["stopped_step"]
        self.reason = StopReason.of(state["reason"])

    def _guard_arguments(self) -> str:
        return (
            f"monitor={self.monitor!r}, use_abs={self.use_abs}, warmup_steps={self.warmup_steps}, "
            f"min_accuracy={self.min_accuracy}, loss_tolerance={self.loss_tolerance}, rebase_loss_drop={self.rebase_loss_drop}"
        )
