"""Hugging Face Trainer adapter: :class:`FairnessCallback`, a ``transformers.TrainerCallback``.

Events (see :class:`FairnessCallback` for what each does):

- ``on_init_end`` / ``on_train_begin``: move this callback to the front of the Trainer's list (so
  its additions to the evaluation metrics reach the stock ``EarlyStoppingCallback``), build the
  probe from the Trainer's tokenizer, restore the early-stopping state of a resumed run, check the
  stop rule, the model's vocabulary and the history path (``FairnessTracker.begin``).
- ``on_step_begin`` (first step only): the step-0 probe (``probe_at_start``).
- ``on_step_end``: every ``every_n_steps`` optimizer steps (``on_step_end`` fires once per
  optimizer step, never per micro-batch), probe, log, and set ``control.should_training_stop``.
- ``on_evaluate``: read ``eval_loss``; add ``eval_fairness/...`` to the evaluation metrics (a
  ``trainer.evaluate()`` before any training builds the probe first).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import CallbackHandler

from ..probe import FairnessProbe
from ..training.stopping import StopRule
from ._base import TrackerAdapter

log = logging.getLogger("fairness_callback")

#: Key of this callback's state in ``TrainerState.stateful_callbacks`` (saved with every checkpoint).
STATE_KEY = "fairness_callback"


def _find_handler() -> CallbackHandler | None:
    """The Trainer's CallbackHandler, which is calling us now (callbacks are not given the Trainer)."""
    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, CallbackHandler):
            return owner
        frame = frame.f_back
    return None


class FairnessCallback(TrackerAdapter, TrainerCallback):
    """Probe the model's gender bias every N optimizer steps, log it, and stop when it grows.

    Add it to a Trainer: ``Trainer(..., callbacks=[FairnessCallback(every_n_steps=200)])``.
    Metrics go through ``Trainer``'s own logging (``report_to``: TensorBoard, W&B, ...) at the
    current global step, under ``fairness/`` (HF's reporters show them as ``train/fairness/...``),
    and into ``trainer.state.log_history``. At each evaluation they are added to the metrics as
    ``eval_fairness/...``, so ``metric_for_best_model="eval_fairness/jsdp/abs_gap"`` with
    ``greater_is_better=False`` and the stock ``EarlyStoppingCallback`` can use them.

    Args:
        every_n_steps, probe, tokenizer, early_stopping, probe_at_start, history_path, on_error,
            log_all_metrics, probe_budget, probes: see :class:`~fairness_callback.integrations._base.TrackerAdapter`
            (documented in :class:`~fairness_callback.FairnessTracker`). Here the default probe is
            built from ``tokenizer``, else the Trainer's ``processing_class``; the held-out loss
            is ``eval_loss``; ``history_path`` defaults to ``<output_dir>/fairness_history.jsonl``
            (the run id is saved with each checkpoint, so a resumed run continues its own run and
            a new ``train()`` in the same folder starts another).
        probe_on_evaluate: also probe at each evaluation not already probed at that step, so the
            ``eval_fairness/...`` metrics are of the evaluated weights.

    Attributes: see :class:`~fairness_callback.integrations._base.TrackerAdapter`.
    """

    framework = "hf"
    loss_key = "eval_loss"

    def __init__(
        self,
        every_n_steps: int = 500,
        probe: FairnessProbe | None = None,
        tokenizer: Any = None,
        early_stopping: StopRule | None = None,
        probe_at_start: bool = True,
        history_path: str | os.PathLike | None = None,
        on_error: Literal["warn", "raise"] = "warn",
        log_all_metrics: bool = False,
        probe_budget: float | None = None,
        probes: Mapping[str, FairnessProbe] | None = None,
        probe_on_evaluate: bool = True,
    ) -> None:
        super().__init__(
            every_n_steps,
            probe,
            tokenizer,
            early_stopping,
            probe_at_start,
            history_path,
            on_error,
            log_all_metrics,
            probe_budget,
            probes,
        )
        self.probe_on_evaluate = probe_on_evaluate
        self._handler: CallbackHandler | None = None
        self._start_pending = False
        self._set_up = False

    # -- events -----------------------------------------------------------------------------------
    def on_init_end(self, args, state, control, **kwargs):
        self._move_to_front()

    def on_train_begin(self, args, state, control, processing_class=None, model=None, **kwargs):
        self._move_to_front()
        self._setup(args, processing_class)
        self.tracker.reset()
        saved = state.stateful_callbacks.get(STATE_KEY)
        if saved:  # a run resumed from a checkpoint continues the early-stopping count
            self.load_state_dict(saved)
        # The configuration, the model's vocabulary and the history path are checked before the first step.
        self.tracker.begin(model, state.global_step)
        self._start_pending = True
        # Every train() gets a new TensorBoard writer (the stock callback closes its writer at the end).
        self._layout_written = False

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self._start_pending:
            self._start_pending = False
            self._act(args, state, control, self.tracker.start(model, state.global_step, self._autocast(args, model)))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.tracker.is_due(state.global_step):
            self._probe(args, state, control, model)

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs):
        if metrics is None:
            return
        if not self._set_up:  # trainer.evaluate() before any training
            self._setup(args, processing_class)
        self.tracker.update_loss(metrics)
        if self.probe_on_evaluate and self.tracker.last_probed_step != state.global_step and model is not None:
            self._probe(args, state, control, model)
        if self.tracker.last_metrics is not None:
            logged = self.tracker.logged_metrics(self.tracker.last_metrics)
            metrics.update({f"eval_{key}": value for key, value in logged.items()})
        self._export_state(state)

    # -- helpers ----------------------------------------------------------------------------------
    def _move_to_front(self) -> None:
        # Safe inside CallbackHandler.call_event's loop: removing index i and inserting at 0
        # leaves every later callback at its index, so none is skipped or called twice.
        # Looked up on every call: a callback reused in a new Trainer must not log to the old one.
        handler = _find_handler()
        if handler is None:
            return
        self._handler = handler
        if handler.callbacks and handler.callbacks[0] is not self and self in handler.callbacks:
            handler.callbacks.remove(self)
            handler.callbacks.insert(0, self)

    def _setup(self, args, processing_class) -> None:
        """Build the probe (from the Trainer's tokenizer unless given one) and open the history file."""
        self.tracker.setup(tokenizer=processing_class, default_dir=args.output_dir)
        self._set_up = True

    def _probe(self, args, state, control, model: torch.nn.Module) -> None:
        self._act(args, state, control, self.tracker.probe_now(model, state.global_step, self._autocast(args, model)))

    def _act(self, args, state, control, outcome) -> None:
        """Log a probe's metrics, pass on its stop vote, and keep the state for the next checkpoint."""
        if outcome.metrics is not None:
            self._log(args, state, control, self.tracker.logged_metrics(outcome.metrics))
        if outcome.should_stop:
            control.should_training_stop = True
        self._export_state(state)

    @staticmethod
    def _autocast(args, model: torch.nn.Module):
        """The autocast of the training step (``bf16`` / ``fp16``), or None for full precision."""
        if not (args.bf16 or args.fp16):
            return None
        device_type = next(model.parameters()).device.type
        return torch.autocast(device_type, dtype=torch.bfloat16 if args.bf16 else torch.float16)

    def _log(self, args, state, control, logs: dict[str, float]) -> None:
        state.log_history.append({**logs, "step": state.global_step})
        if self._handler is None:
            log.warning("FairnessCallback: the Trainer's callback handler was not found; metrics go to the history file only")
            return
        self._handler.on_log(args, state, control, logs=dict(logs))
        if not self._layout_written:  # the TensorBoard callback's writer exists once it logged
            self._write_layout(
                (getattr(callback, "tb_writer", None) for callback in self._handler.callbacks), prefix="train/fairness/"
            )

    def _export_state(self, state) -> None:
        state.stateful_callbacks[STATE_KEY] = self.state_dict()
