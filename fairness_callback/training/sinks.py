"""Where :class:`~fairness_callback.training.tracker.FairnessTracker` sends its metrics in a loop of one's own.

``FairnessTracker(log=...)`` takes any of:

- a callable ``(metrics, step)``: e.g. ``fabric.log_dict``, ``accelerator.log`` or a function of yours;
- a ``torch.utils.tensorboard.SummaryWriter`` (anything with ``add_scalar``): one scalar per
  metric at the step, and the custom-scalars layout once;
- a W&B run or the ``wandb`` module (anything with ``log`` and ``define_metric``): the metrics
  are added to the run's *current* row with ``commit=False`` and a ``fairness/step`` key that
  ``define_metric`` makes their x-axis, so W&B's own step is never moved (a ``log(step=...)``
  behind the user's step would be dropped, one ahead would drop the user's next rows);
- a logger with ``log_metrics(metrics, step)`` (Lightning's loggers).

:class:`MetricsLog` is the tracker's part that picks the metrics to log (the headline ones, or
all) and sends them on rank 0. The callbacks use its choice but log through their framework's
own loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..probe.distributed import is_rank_zero
from ..probe.keys import MetricKey

__all__ = [
    "HEADLINE_METRICS",
    "is_headline",
    "make_sink",
    "MetricsLog",
    "MetricsSink",
    "TensorBoardSink",
    "WandbSink",
    "write_layout",
]

MetricsSink = Callable[[dict[str, float], int], None]

log = logging.getLogger("fairness_callback")

#: Metrics sent to the training loggers by default for the gender task (every metric goes to the
#: history file); other tasks log the same kinds of keys for their own groups (:func:`is_headline`).
HEADLINE_METRICS: tuple[str, ...] = tuple(
    [f"{m}/{g}" for m in ("ar", "jsdp", "acc") for g in ("male", "female", "not_specified")]
    + ["ar/gap", "jsdp/gap", "ar/abs_gap", "jsdp/abs_gap", "mwu_p/ar", "mwu_p/jsdp", "mwu_rbc/ar", "mwu_rbc/jsdp", "jsdp/lean"]
)


def is_headline(key: str, prefixed: bool) -> bool:
    """A headline metric: ``ar|jsdp|acc/<group>``, the gaps and Mann-Whitney (after ``<probe>/`` if ``prefixed``)."""
    parsed = MetricKey.try_parse(key)
    return (
        parsed is not None
        and len(parsed.scope) == int(prefixed)
        and parsed.kind != "n"
        and parsed.part is None
        and "_ci_" not in parsed.group
    )


def write_layout(writer: Any, layout: dict) -> bool:
    """Write a TensorBoard custom-scalars ``layout`` (see ``FairnessTracker.tensorboard_layout``) with
    ``writer.add_custom_scalars``; False, writing nothing, when ``writer`` has no such method (or is None).

    The one place a layout is written: :class:`TensorBoardSink` and both callbacks call it.
    """
    if writer is None or not hasattr(writer, "add_custom_scalars"):
        return False
    writer.add_custom_scalars(layout)
    return True


class TensorBoardSink:
    """Writes each metric with ``add_scalar`` and the custom-scalars layout on first use."""

    def __init__(self, writer: Any, layout: dict | None) -> None:
        self.writer = writer
        self.layout = layout

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        if self.layout is not None and write_layout(self.writer, self.layout):
            self.layout = None
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)


class WandbSink:
    """Adds the metrics to the W&B run's current row (``commit=False``), against ``fairness/step``."""

    STEP_KEY = "fairness/step"

    def __init__(self, run: Any) -> None:
        self.run = run
        self._defined = False

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        if not self._defined:
            self.run.define_metric(self.STEP_KEY)
            self.run.define_metric("fairness/*", step_metric=self.STEP_KEY)
            self._defined = True
        self.run.log({**metrics, self.STEP_KEY: step}, commit=False)


def make_sink(log: Any, layout: dict | None = None) -> MetricsSink | None:
    """A ``(metrics, step)`` function for ``log`` (see the module docstring); None for None.

    Raises TypeError naming what ``log`` is when it is none of the supported kinds.
    """
    if log is None:
        return None
    if hasattr(log, "add_scalar"):
        return TensorBoardSink(log, layout)
    if hasattr(log, "define_metric") and hasattr(log, "log"):
        return WandbSink(log)
    if hasattr(log, "log_metrics"):
        return lambda metrics, step: log.log_metrics(metrics, step=step)
    if callable(log):
        return log
    raise TypeError(
        f"log must be a callable (metrics, step), a SummaryWriter, a wandb run or a logger with log_metrics; "
        f"got {type(log).__name__}"
    )


class MetricsLog:
    """The metrics a probe sends to the training loggers, and the sending.

    Args:
        log: where they go (see :func:`make_sink`); None: nowhere (the callbacks log themselves).
        log_all_metrics: every metric, not only the headline ones.
        prefixed: the keys carry a probe's name in front (several probes: ``gender/jsdp/gap``).
    """

    def __init__(self, log: Any = None, log_all_metrics: bool = False, prefixed: bool = False) -> None:
        self.sink = make_sink(log, None)
        self.log_all_metrics = log_all_metrics
        self.prefixed = prefixed

    def select(self, metrics: dict[str, float]) -> dict[str, float]:
        """The metrics to log, under the ``fairness/`` prefix: the gender headline in its fixed order
        for one gender probe, the same kinds of keys for another task or several probes."""
        if self.log_all_metrics:
            keys = list(metrics)
        elif self.prefixed:
            keys = [k for k in metrics if is_headline(k, prefixed=True)]
        else:
            keys = [k for k in HEADLINE_METRICS if k in metrics] or [k for k in metrics if is_headline(k, prefixed=False)]
        return {f"fairness/{k}": float(metrics[k]) for k in keys}

    def show_layout(self, layout: dict) -> None:
        """The custom-scalars layout for a sink that shows one (TensorBoard's), written with its first metrics."""
        if isinstance(self.sink, TensorBoardSink):
            self.sink.layout = layout

    def send(self, metrics: dict[str, float], step: int) -> BaseException | None:
        """Log :meth:`select` of ``metrics`` at ``step`` (rank 0); a logger's failure is logged and
        returned, never raised: it must not end training."""
        if self.sink is None or not is_rank_zero():
            return None
        try:
            self.sink(self.select(metrics), step)
        except Exception as exc:
            log.error("fairness metrics at step %d could not be logged; training goes on", step, exc_info=True)
            return exc
        return None
