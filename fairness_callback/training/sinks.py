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

The callbacks do not use this: they log through their framework's own loggers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "make_sink",
    "MetricsSink",
    "TensorBoardSink",
    "WandbSink",
    "write_layout",
]

MetricsSink = Callable[[dict[str, float], int], None]


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
