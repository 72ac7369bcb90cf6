"""Hugging Face Trainer adapter: :class:`HFFairnessCallback`, a ``transformers.TrainerCallback``.

Events (see :class:`HFFairnessCallback` for what each does):

- ``on_init_end``: find the Trainer's callback handler (:func:`calling_handler`).
- ``on_train_begin``: build the probe from the Trainer's tokenizer, restore the state a resumed
  run's checkpoint kept, check the stop rule, the model's vocabulary and the history path
  (``FairnessTracker.begin``), and the callbacks beside it.
- ``on_step_begin`` (first step only): the step-0 probe (``probe_at_start``).
- ``on_step_end``: every ``every_n_steps`` optimizer steps (``on_step_end`` fires once per
  optimizer step, never per micro-batch), probe, log, and set ``control.should_training_stop``.
- ``on_evaluate``: read ``eval_loss``; add ``eval_fairness/...`` to the evaluation metrics (a
  ``trainer.evaluate()`` before any training builds the probe first).

Checkpoints keep its state through transformers' ``ExportableState`` (:meth:`HFFairnessCallback.state`).
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import torch
from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_callback import CallbackHandler, ExportableState

from ..probe import FairnessProbe
from ..training.alerts import Alerts
from ..training.stopping import StopRule
from ._base import TrackerAdapter

__all__ = ["HFFairnessCallback", "calling_handler"]

log = logging.getLogger("fairness_callback")

#: Where checkpoints of 0.1.0 kept its state in
#: ``TrainerState.stateful_callbacks``; still read on resume.
OLD_STATE_KEY = "fairness_callback"
#: Constructor arguments that JSON cannot carry, so transformers cannot rebuild a callback given
#: them (``restore_callback_states_from_checkpoint=True`` rebuilds callbacks from their ``state()``).
_OBJECT_ARGUMENTS = ("probe", "probes", "tokenizer", "early_stopping", "alerts")


def calling_handler() -> CallbackHandler | None:
    """The Trainer's ``CallbackHandler`` that is calling a callback now, or None outside an event.

    transformers gives a callback's events neither the Trainer nor its handler (as of 5.x:
    ``args, state, control`` and the ``model``, ``processing_class``, ``optimizer``,
    ``lr_scheduler`` and data loaders that ``CallbackHandler.call_event`` passes), and a callback
    has no documented way to log outside ``on_log`` (which fires only on the Trainer's own logging
    steps). So the probe's metrics reach the reporters (``report_to``) through the handler that is
    calling us, found up the stack. ``tests/integrations/test_hf_callback.py::test_events_still_get_no_trainer``
    fails when transformers starts passing one: then log through it and delete this function.
    """
    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, CallbackHandler):
            return owner
        frame = frame.f_back
    return None


class HFFairnessCallback(TrackerAdapter, TrainerCallback, ExportableState):
    """Probe the model's gender bias every N optimizer steps, log it, and stop when it grows.

    Add it to a Trainer: ``Trainer(..., callbacks=[HFFairnessCallback(every_n_steps=200)])``.
    Metrics go through ``Trainer``'s own logging (``report_to``: TensorBoard, W&B, ...) at the
    current global step, under ``fairness/`` (HF's reporters show them as ``train/fairness/...``),
    and into ``trainer.state.log_history``. At each evaluation they are added to the metrics as
    ``eval_fairness/...``, so ``metric_for_best_model="eval_fairness/jsdp/abs_gap"`` with
    ``greater_is_better=False`` and the stock ``EarlyStoppingCallback`` can use them (list this
    callback before it: callbacks read the metrics in the order of the list).

    Its state (the run id, the stop rule's count, the schedule) is saved with every checkpoint by
    transformers (``ExportableState``: ``trainer_state.json``, ``stateful_callbacks``) and read
    back by the callback itself when ``train(resume_from_checkpoint=...)`` begins.

    Args:
        every_n_steps, probe, tokenizer, early_stopping, probe_at_start, history_path, on_error,
            log_all_metrics, probe_budget, probes, alerts: see :class:`~fairness_callback.integrations._base.TrackerAdapter`
            (documented in :class:`~fairness_callback.FairnessTracker`). Here the default probe is
            built from ``tokenizer``, else the Trainer's ``processing_class``; the held-out loss
            is ``eval_loss``; ``history_path`` defaults to ``<output_dir>/fairness_history.jsonl``
            (the run id is saved with each checkpoint, so a resumed run continues its own run and
            a new ``train()`` in the same folder starts another); ``alerts`` go to the W&B run that
            ``report_to=["wandb"]`` starts (the global ``wandb.run``) and the Trackio run of
            ``report_to=["trackio"]``.
        probe_on_evaluate: also probe at each evaluation not already probed at that step, so the
            ``eval_fairness/...`` metrics are of the evaluated weights.
        name: see :class:`~fairness_callback.integrations._base.TrackerAdapter`.

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
        name: str | None = None,
        alerts: Alerts | None = None,
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
            name,
            alerts,
        )
        self.probe_on_evaluate = probe_on_evaluate
        # What state() gives transformers to rebuild this callback from JSON, and what it cannot.
        self._json_arguments = {
            "every_n_steps": every_n_steps,
            "probe_at_start": probe_at_start,
            "history_path": None if history_path is None else os.fspath(history_path),
            "on_error": on_error,
            "log_all_metrics": log_all_metrics,
            "probe_budget": probe_budget,
            "probe_on_evaluate": probe_on_evaluate,
            "name": name,
            **({"tokenizer": tokenizer} if isinstance(tokenizer, str) else {}),
        }
        given = {"probe": probe, "probes": probes, "tokenizer": tokenizer, "early_stopping": early_stopping, "alerts": alerts}
        self._not_in_json = [key for key in _OBJECT_ARGUMENTS if given[key] is not None and key not in self._json_arguments]
        self._handler: CallbackHandler | None = None
        self._start_pending = False

    # -- events -----------------------------------------------------------------------------------
    def on_init_end(self, args, state, control, **kwargs):
        self._handler = calling_handler()  # for a trainer.evaluate() before any train()

    def on_train_begin(self, args, state, control, processing_class=None, model=None, **kwargs):
        # Looked up at every train(): a callback reused in a new Trainer must not log to the old one.
        self._handler = calling_handler()
        self._refuse_lost_configuration()
        if self._handler is not None:
            self._check_siblings(self._handler.callbacks, args.output_dir)
            self._check_order(args, self._handler.callbacks)
        self.tracker.reset()
        # A resumed run (its TrainerState read from the checkpoint, at the checkpoint's step) continues
        # the early-stopping count; a fresh one holds only what state() gave its new TrainerState.
        saved = self._saved_state(state) if state.global_step > 0 else None
        if saved:
            self.load_state_dict(saved)
        # The configuration, the model's vocabulary and the history path are checked before the first
        # step; the step-0 probe waits for on_step_begin, where the model is on its device and wrapped.
        self.tracker.start(model, state.global_step, probe=False, **self._run_files(args, processing_class))
        self._start_pending = True
        # Every train() gets a new TensorBoard writer (the stock callback closes its writer at the end).
        self._layout_written = False

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self._start_pending:
            self._start_pending = False
            self._act(args, state, control, self.tracker.start(model, state.global_step, self._autocast(args, model)))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.tracker.schedule.is_due(state.global_step):
            self._probe(args, state, control, model)

    def on_evaluate(self, args, state, control, metrics=None, model=None, processing_class=None, **kwargs):
        if metrics is None:
            return
        self.tracker.update_loss(metrics)
        if self.probe_on_evaluate and self.tracker.schedule.last_probed_step != state.global_step and model is not None:
            # trainer.evaluate() before any training opens the run here (later calls change nothing).
            self.tracker.start(model, state.global_step, probe=False, **self._run_files(args, processing_class))
            self._probe(args, state, control, model)
        if self.tracker.last_metrics is not None:
            logged = self.tracker.metrics_log.select(self.tracker.last_metrics)
            metrics.update({f"eval_{key}": value for key, value in logged.items()})

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """``ExportableState``: what transformers saves with each checkpoint (``trainer_state.json``).

        ``args``: the constructor arguments JSON can carry; ``attributes``: ``checkpoint_state``,
        this callback's :attr:`state_key`, its :meth:`state_dict` and the arguments ``args`` lacks.
        """
        return {
            "args": dict(self._json_arguments),
            "attributes": {
                "checkpoint_state": {"key": self.state_key, "state": self.state_dict(), "not_in_args": self._not_in_json}
            },
        }

    def _saved_state(self, state) -> dict[str, Any] | None:
        """This callback's state in a resumed run's ``TrainerState``, found by :attr:`state_key`."""
        saved = state.stateful_callbacks.get(type(self).__name__)
        # Several callbacks of one class are kept as a list, to which transformers appends at every save: the last is the latest.
        entries = saved if isinstance(saved, list) else [saved] if saved else []
        mine = [
            entry["attributes"]["checkpoint_state"]["state"]
            for entry in entries
            if isinstance(entry, dict) and entry.get("attributes", {}).get("checkpoint_state", {}).get("key") == self.state_key
        ]
        return mine[-1] if mine else state.stateful_callbacks.get(OLD_STATE_KEY)

    def _refuse_lost_configuration(self) -> None:
        """With ``restore_callback_states_from_checkpoint=True`` transformers replaces each callback by
        one rebuilt from ``state()["args"]``: refuse, before training, a rebuild that lost a probe or a
        stop rule JSON could not carry (it would train on with a default probe and no stop rule)."""
        rebuilt = self.__dict__.get("checkpoint_state")  # set on a rebuilt callback only
        if rebuilt and rebuilt.get("not_in_args"):
            raise ValueError(
                f"TrainingArguments(restore_callback_states_from_checkpoint=True) rebuilt {type(self).__name__} "
                f"from its saved arguments, which cannot hold its {', '.join(rebuilt['not_in_args'])}: set "
                "restore_callback_states_from_checkpoint=False (this callback restores its own state from the "
                "checkpoint either way)"
            )

    def _check_order(self, args, callbacks: list[Any]) -> None:
        """A stock ``EarlyStoppingCallback`` that monitors this callback's metric must come after it."""
        metric = (args.metric_for_best_model or "").removeprefix("eval_")
        if not metric.startswith("fairness/") or self not in callbacks:
            return
        if any(isinstance(callback, EarlyStoppingCallback) for callback in callbacks[: callbacks.index(self)]):
            raise ValueError(
                f"EarlyStoppingCallback comes before {type(self).__name__} in the Trainer's callbacks, so it would read "
                f"metric_for_best_model={args.metric_for_best_model!r} before this callback adds it: list "
                f"{type(self).__name__} first (callbacks=[{type(self).__name__}(...), EarlyStoppingCallback(...)])"
            )

    # -- helpers ----------------------------------------------------------------------------------
    def _run_files(self, args, processing_class) -> dict[str, Any]:
        """What the tracker takes from the Trainer when it opens a run: its tokenizer (for a probe
        built from it) and its output folder (for the history file)."""
        return {"tokenizer": processing_class, "default_history_path": self._default_history_path(args.output_dir)}

    def _probe(self, args, state, control, model: torch.nn.Module) -> None:
        self._act(args, state, control, self.tracker.probe_now(model, state.global_step, self._autocast(args, model)))

    def _act(self, args, state, control, outcome) -> None:
        """Log a probe's metrics, pass on its stop vote, and keep the state for the next checkpoint."""
        if outcome.metrics is not None:
            self._log(args, state, control, self.tracker.metrics_log.select(outcome.metrics))
        if outcome.should_stop:
            control.should_training_stop = True

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
            log.warning("HFFairnessCallback: the Trainer's callback handler was not found; metrics go to the history file only")
            return
        self._handler.on_log(args, state, control, logs=dict(logs))
        if not self._layout_written:  # the TensorBoard callback's writer exists once it logged
            self._write_layout(
                (getattr(callback, "tb_writer", None) for callback in self._handler.callbacks), prefix="train/fairness/"
            )


def __getattr__(name: str) -> Any:
    if name == "FairnessCallback":  # its name in 0.1.0
        warnings.warn(
            "fairness_callback.integrations.hf.FairnessCallback is now HFFairnessCallback", DeprecationWarning, stacklevel=2
        )
        return HFFairnessCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
