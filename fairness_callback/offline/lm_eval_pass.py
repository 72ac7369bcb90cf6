"""The accuracy side in the replay's pass: lm-evaluation-harness on the checkpoint already in memory.

``fairness-callback replay ... --lm-eval-task NAME`` loads each checkpoint once: the probe runs on
it, then :class:`LmEvalEvaluator` wraps the same model in lm-eval's ``HFLM(pretrained=model,
tokenizer=...)`` and runs ``simple_evaluate`` on the tasks; their metrics go into the checkpoint's
probe line as ``lm_eval/<task>/<metric>`` (``lm_eval/lambada_openai/acc``,
``lm_eval/lambada_openai/acc_stderr``; a metric of a filter other than lm-eval's ``none`` keeps it:
``lm_eval/gsm8k/exact_match,strict-match``), numbers only, and ``lm_eval/seconds``.
``fairness-callback report`` then takes the first accuracy-like column (:func:`accuracy_column`) as
the trade-off's cost, higher is better, without a cost CSV.

:func:`run_evaluators` is what the replay calls after the probe, for any :class:`Evaluator`: an
evaluator that fails on a checkpoint is logged and named in the line (``<name>/error``), and the
probe line is written all the same, without that evaluator's values.

lm-eval is the ``[eval]`` extra; it is imported only when an evaluator is built.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._extras import require
from ..probe.fairness_probe import restored_state

if TYPE_CHECKING:
    import torch

    from .replay import Checkpoint

__all__ = [
    "ACCURACY_METRICS",
    "accuracy_column",
    "Evaluator",
    "is_lm_eval_column",
    "KEY_PREFIX",
    "kept_state",
    "lm_eval_higher_is_better",
    "lm_eval_values",
    "LmEvalEvaluator",
    "resolve_tasks",
    "run_evaluators",
    "task_of_yaml",
]

log = logging.getLogger("fairness_callback")

#: The first segment of every key the lm-eval pass writes.
KEY_PREFIX = "lm_eval"
#: The metrics :func:`accuracy_column` takes as a task's accuracy, in this order of preference.
ACCURACY_METRICS: tuple[str, ...] = ("acc", "acc_norm", "exact_match")
#: lm-eval metrics that are better when lower; every other ``lm_eval/`` column is better when higher.
_LOWER_IS_BETTER = frozenset({"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"})


class Evaluator(Protocol):
    """What the replay runs on each checkpoint's model after the probe (the model stays loaded).

    ``name`` prefixes its keys and names it in a failure (``<name>/error``, ``<name>/seconds``);
    calling it returns the values to add to the checkpoint's probe line. It must leave the model
    as it found it (see :func:`kept_state`).
    """

    name: str

    def __call__(self, model: torch.nn.Module, checkpoint: Checkpoint) -> Mapping[str, Any]: ...


def run_evaluators(evaluators: Sequence[Evaluator], model: torch.nn.Module, checkpoint: Checkpoint) -> dict[str, Any]:
    """The values every evaluator gives for ``model`` (``checkpoint`` loaded), merged, plus each one's
    ``<name>/seconds``. Never raises: an evaluator that fails is logged and gives ``<name>/error``
    (``"Type: message"``) instead of its values, and the others still run."""
    values: dict[str, Any] = {}
    for evaluator in evaluators:
        start = time.perf_counter()
        try:
            values.update(evaluator(model, checkpoint))
        except Exception as error:  # noqa: BLE001 - an evaluator that fails must not lose the checkpoint's probe line
            log.error(
                "%s failed on checkpoint %s (step %d); its probe line is written without it: %s",
                evaluator.name,
                checkpoint.key,
                checkpoint.step,
                error,
            )
            values[f"{evaluator.name}/error"] = f"{type(error).__name__}: {error}"
        values[f"{evaluator.name}/seconds"] = time.perf_counter() - start
    return values


def kept_state(model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """Put back what an evaluation changes: every module's training flag, and the random states of
    ``random``, NumPy and torch (CPU and, where initialised, CUDA) that lm-eval seeds (the probe's
    own :func:`~fairness_callback.probe.fairness_probe.restored_state`)."""
    return restored_state(model)


# -- tasks ---------------------------------------------------------------------------------------
def task_of_yaml(path: str | os.PathLike) -> str:
    """The task name a task YAML file defines (its ``task:``, else its ``group:``); ValueError naming the file."""
    import yaml  # lm-eval's dependency

    class _Loader(yaml.SafeLoader):
        """Reads lm-eval's ``!function module.name`` tags (and any other) as plain values."""

    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    path = Path(path)
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"--lm-eval-task {str(path)!r}: cannot read it as a task YAML: {error}") from None
    for key in ("task", "group"):
        name = config.get(key) if isinstance(config, dict) else None
        if isinstance(name, str) and name:
            return name
    raise ValueError(f"--lm-eval-task {str(path)!r}: a task YAML names its task with 'task: NAME' (or a group with 'group:')")


def resolve_tasks(tasks: Sequence[str], include: Sequence[str | os.PathLike] = ()) -> tuple[list[str], list[str]]:
    """The task names and include directories of ``--lm-eval-task`` values (each a name, a task YAML
    path, or several of these comma-separated) and ``--lm-eval-include`` directories.

    A YAML path gives its task's name and its folder as an include directory. ValueError for an
    include that is not a directory, a ``.yaml`` path that does not exist, or no task at all.
    """
    names: list[str] = []
    folders: list[str] = []
    for folder in include:
        if not Path(folder).is_dir():
            raise ValueError(f"--lm-eval-include {str(folder)!r} is not a directory")
        folders.append(str(Path(folder).resolve()))
    for entry in tasks:
        for part in (p.strip() for p in entry.split(",")):
            if not part:
                continue
            if part.endswith((".yaml", ".yml")):
                path = Path(part).expanduser()
                if not path.is_file():
                    raise ValueError(f"--lm-eval-task {part!r}: no such task YAML file")
                names.append(task_of_yaml(path))
                folders.append(str(path.resolve().parent))
            else:
                names.append(part)
    if not names:
        raise ValueError("--lm-eval-task names no task")
    return list(dict.fromkeys(names)), list(dict.fromkeys(folders))


# -- results -------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lm_eval_values(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """``simple_evaluate(...)["results"]`` as history values: ``lm_eval/<task>/<metric>`` for each
    number (``"acc,none"`` -> ``acc``; another filter stays: ``exact_match,strict-match``); text
    such as ``alias`` and a ``"N/A"`` standard error is left out, NaN is written as None."""
    values: dict[str, float | None] = {}
    for task, metrics in results.items():
        for name, value in metrics.items():
            if not _is_number(value) or name in ("sample_len", "sample_count"):
                continue
            metric = name[: -len(",none")] if name.endswith(",none") else name
            values[f"{KEY_PREFIX}/{task}/{metric}"] = float(value) if math.isfinite(value) else None
    return values


def _metric_of(column: str) -> str | None:
    """``acc`` of ``lm_eval/<task>/acc`` (``exact_match`` of ``.../exact_match,strict-match``); None for other columns."""
    parts = column.split("/")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[2].split(",")[0]


def is_lm_eval_column(column: str) -> bool:
    """Whether ``column`` is a metric the lm-eval pass wrote (``lm_eval/<task>/<metric>``)."""
    return _metric_of(column) is not None


def lm_eval_higher_is_better(column: str) -> bool | None:
    """The direction of an ``lm_eval/<task>/<metric>`` column: False for perplexities and bits per
    byte, True for every other lm-eval metric (accuracy, exact match, F1, BLEU, ...); None for a
    column that is not lm-eval's."""
    metric = _metric_of(column)
    return None if metric is None else metric not in _LOWER_IS_BETTER


def accuracy_column(columns: Sequence[str]) -> str | None:
    """The first accuracy-like lm-eval column of ``columns`` (in their order): the first task's
    ``acc``, else its ``acc_norm``, else its ``exact_match`` (a filter's, e.g. ``exact_match,strict-match``,
    after the unfiltered one); None when there is none."""
    found = [column for column in columns if _metric_of(column) in ACCURACY_METRICS]
    if not found:
        return None
    task = found[0].split("/")[1]
    return min(
        (column for column in found if column.split("/")[1] == task),
        key=lambda column: (ACCURACY_METRICS.index(_metric_of(column) or ""), "," in column),
    )


# -- the evaluator -------------------------------------------------------------------------------
class LmEvalEvaluator:
    """lm-evaluation-harness's tasks on the model already in memory (an :class:`Evaluator`).

    Args:
        tokenizer: the checkpoints' tokenizer (the probe's); lm-eval gets a copy, as it sets a pad
            token on the tokenizer it is given.
        tasks: task names or task YAML paths, each possibly several comma-separated (:func:`resolve_tasks`).
        include: folders of task YAML files to find the names in (lm-eval's ``include_path``).
        limit: evaluate at most this many documents of each task (lm-eval's ``--limit``).
        batch_size: lm-eval's batch size.
        num_fewshot: few-shot examples (None: each task's own setting).

    The task index is built once, here (an unknown task name is a ValueError naming it, before any
    checkpoint is loaded); each call wraps the model with ``HFLM(pretrained=model, tokenizer=...)``
    and runs ``simple_evaluate``, inside :func:`kept_state` (HFLM calls ``model.eval()``; lm-eval
    seeds ``random``, NumPy and torch). HFLM leaves a given model on its device and in its dtype.

    Raises:
        MissingExtraError: lm-eval is not installed (``pip install "fairness-callback[eval]"``).
    """

    name = KEY_PREFIX

    def __init__(
        self,
        tokenizer: Any,
        tasks: Sequence[str],
        include: Sequence[str | os.PathLike] = (),
        limit: int | None = None,
        batch_size: int = 16,
        num_fewshot: int | None = None,
    ) -> None:
        require("lm_eval", "replay --lm-eval-task")
        from lm_eval.tasks import TaskManager

        self.tasks, self.include = resolve_tasks(tasks, include)
        self.limit = limit
        self.batch_size = batch_size
        self.num_fewshot = num_fewshot
        self.tokenizer = copy.deepcopy(tokenizer)
        self.task_manager = TaskManager(include_path=self.include or None)
        known = set(self.task_manager.all_tasks)
        unknown = [task for task in self.tasks if task not in known]
        if unknown:
            import difflib

            hints = [
                f"{t!r}" + "".join(f" (did you mean {c!r}?)" for c in difflib.get_close_matches(t, known, 1)) for t in unknown
            ]
            where = f" or in {', '.join(self.include)}" if self.include else ""
            raise ValueError(
                f"--lm-eval-task: no lm-eval task {', '.join(hints)} among lm-eval's tasks{where}; "
                "give a task YAML path or its folder with --lm-eval-include"
            )

    def __call__(self, model: torch.nn.Module, checkpoint: Checkpoint | None = None) -> dict[str, float | None]:
        """The tasks' metrics for ``model`` as ``lm_eval/<task>/<metric>`` values (:func:`lm_eval_values`)."""
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        with kept_state(model):
            lm = HFLM(pretrained=model, tokenizer=self.tokenizer, batch_size=self.batch_size)
            output = simple_evaluate(
                model=lm,
                tasks=list(self.tasks),
                task_manager=self.task_manager,
                limit=self.limit,
                num_fewshot=self.num_fewshot,
                log_samples=False,
            )
        if output is None or not output.get("results"):
            raise RuntimeError(f"lm-eval returned no results for {', '.join(self.tasks)}")
        return lm_eval_values(output["results"])
