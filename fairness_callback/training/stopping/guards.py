"""The parts every stop rule may compose: which probes to ignore, when to restart, whether the loss allows a stop.

- :class:`Warmup`: ignore probes before a step.
- :class:`MinAccuracy`: ignore probes where the model does not yet answer both gap groups.
- :class:`HeldOutLoss`: the held-out losses a rule has seen (one place), and the mission's
  condition on them: stop only while the loss is within ``tolerance`` of its best.
- :class:`RebaseOnLossDrop`: a rule's reference (its best, its baseline) goes stale once the loss has
  fallen far since it was set: the model has changed too much to be compared with it.

Each is a small object with its own arguments check and state; a rule (``rule.py``) asks them in
a fixed order and words its decision from their answers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ...probe.keys import MetricKey

__all__ = ["HeldOutLoss", "MinAccuracy", "RebaseOnLossDrop", "Warmup"]

log = logging.getLogger(__name__)


class Warmup:
    """Ignore probes before ``steps`` (the phase where an untrained model answers one option for
    every prompt and the gap jumps with it)."""

    def __init__(self, steps: int = 0) -> None:
        if steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {steps}")
        self.steps = steps

    def skip(self, step: int) -> str | None:
        """Why the probe at ``step`` is ignored, or None."""
        return f"step {step} is within warmup_steps={self.steps}" if step < self.steps else None


class MinAccuracy:
    """Ignore probes where the accuracy on either gap group's prompts is below ``threshold``.

    A model that has not learned to read the pronoun answers one option for every prompt, and its
    gap then only says which option that is. 0 ignores nothing: Average Rank and JSD-P are
    informative at zero accuracy, as in the paper. The groups are the monitored probe's task's
    (gender: female and male; BBQ: inconsistent and consistent), given by :meth:`check`.
    """

    def __init__(self, threshold: float = 0.0, monitor: str = "jsdp/gap") -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"min_accuracy must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.monitor = monitor
        self.groups: tuple[str, ...] = ("female", "male")

    def keys(self) -> tuple[str, ...]:
        """``acc/<group>`` of the monitored probe's two gap groups (after the probe's name, if any)."""
        monitor = MetricKey.parse(self.monitor)
        return tuple(str(monitor.sibling("acc", group)) for group in self.groups)

    def check(self, metric_keys: set[str], gap_groups: Iterable[str] | None, owner: str) -> None:
        """Take the task's gap groups; ValueError (worded for ``owner``) if the probe has no such accuracies."""
        if gap_groups is not None:
            self.groups = tuple(gap_groups)
        if self.threshold <= 0:
            return
        missing = [key for key in self.keys() if key not in metric_keys]
        if missing:
            parsed = [MetricKey.try_parse(k) for k in metric_keys]
            accuracies = sorted(str(k) for k in parsed if k is not None and k.kind == "acc")
            raise ValueError(
                f"{owner}(min_accuracy={self.threshold}): monitor {self.monitor!r} has no {' or '.join(missing)}; "
                f"accuracies: {', '.join(accuracies)}"
            )

    def lowest(self, metrics: Mapping[str, float]) -> tuple[float, str]:
        """The lowest accuracy over the gap groups' prompts, and the groups in words (``"female or male"``)."""
        keys = self.keys()
        return min(float(metrics[key]) for key in keys), " or ".join(MetricKey.parse(key).group for key in keys)

    def skip(self, metrics: Mapping[str, float]) -> str | None:
        """Why a probe with these ``metrics`` is ignored, or None."""
        if self.threshold <= 0:
            return None
        accuracy, groups = self.lowest(metrics)
        if accuracy >= self.threshold:
            return None
        return f"accuracy {accuracy:.2f} on {groups} answers is below min_accuracy={self.threshold}; probe ignored"


class HeldOutLoss:
    """The held-out losses a rule has seen, and whether they allow a stop.

    Args:
        key: the loss's name, for messages (None: the adapter sets it: ``"eval_loss"`` for the HF
            Trainer, ``"val_loss"`` for Lightning).
        tolerance: a stop is allowed only if ``latest <= best * (1 + tolerance)`` (relative).
        required: never stop without a held-out loss (by default a rule says so once and decides on
            the gap alone).
    """

    def __init__(self, key: str | None = None, tolerance: float = 0.02, required: bool = False) -> None:
        if tolerance < 0:
            raise ValueError(f"loss_tolerance must be >= 0, got {tolerance}")
        self.key = key
        self.tolerance = tolerance
        self.required = required
        self.reset()

    def reset(self) -> None:
        self.latest: float | None = None
        self.best: float = math.inf
        self._said_none = False

    def update(self, loss: float | None) -> None:
        """Record a held-out loss (non-finite values are ignored)."""
        if loss is None or not math.isfinite(loss):
            return
        self.latest = float(loss)
        self.best = min(self.best, float(loss))

    @property
    def name(self) -> str:
        return self.key or "held-out loss"

    def veto(self, gap_text: str) -> str | None:
        """Why the loss forbids a stop that ``gap_text`` describes, or None; says once when deciding without a loss."""
        if self.latest is None:
            if self.required:
                return f"{gap_text}, but no {self.name} is known and require_loss=True"
            if not self._said_none:
                log.warning("fairness early stopping: no %s has been logged; deciding on the fairness gap alone", self.name)
                self._said_none = True
            return None
        if self.latest > self.limit():
            return f"{gap_text}, but {self.relation('not within')}"
        return None

    def limit(self) -> float:
        return self.best * (1 + self.tolerance) if self.best >= 0 else self.best * (1 - self.tolerance)

    def relation(self, word: str) -> str:
        """``"val_loss 0.45 within 2% of best 0.44"`` with ``word`` in the middle."""
        return f"{self.name} {self.latest:.4g} {word} {self.tolerance:.0%} of best {self.best:.4g}"

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best, "latest_loss": self.latest, "said_no_loss": self._said_none}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best_loss"])
        self.latest = state["latest_loss"]
        self._said_none = bool(state.get("said_no_loss", False))


class RebaseOnLossDrop:
    """A rule's reference goes stale once the held-out loss has fallen by more than ``drop`` since it
    was set (``latest * (1 + drop) < loss_at_reference``).

    A stop then never names as fairest a model far worse than the current one, such as the untrained
    model of the first probes (which answers one option everywhere, so its gap is about 0). A
    reference set with no held-out loss known is stale as soon as one is. None: never (and without
    held-out losses it never acts).
    """

    def __init__(self, drop: float | None = 0.5) -> None:
        if drop is not None and not drop >= 0:
            raise ValueError(f"rebase_loss_drop must be >= 0 or None, got {drop}")
        self.drop = drop

    def stale(self, loss_at_reference: float | None, latest: float | None, has_reference: bool) -> bool:
        """Whether a reference set when the loss was ``loss_at_reference`` is stale at loss ``latest``."""
        if self.drop is None or not has_reference or latest is None:
            return False
        if loss_at_reference is None:
            return True
        at, drop = loss_at_reference, self.drop
        return latest * (1 + drop) < at if at >= 0 else latest < at * (1 + drop)

    def why(self, loss_at_reference: float | None, latest: float | None, reference_step: int | None, what: str) -> str:
        """``"held-out loss fell from 1 to 0.8 since the best at step 0 (rebase_loss_drop=0.1)"``."""
        fell = f"from {loss_at_reference:.4g} " if loss_at_reference is not None else ""
        return (
            f"held-out loss fell {fell}to {latest:.4g} since the {what} at step {reference_step} (rebase_loss_drop={self.drop:g})"
        )
