"""Offline replay: probe a series of saved checkpoints and append to a history, like the live callback.

Checkpoints are HF ``checkpoint-N`` folders (Trainer), any ``save_pretrained`` directory, a folder
holding ``checkpoint-N`` folders, Lightning ``.ckpt`` files (with a model factory), or revisions
of one hub model (``step1000``, Pythia's naming) for users who are online. The probe and the
history format are those of the live callback, so live and offline numbers agree.

A replay writes its lines under a run id of its own, after a ``run_start`` line whose
``framework`` is ``"replay"`` and whose ``checkpoints`` names the source (:func:`replay_source`).
A rerun on the same source continues that run (same id, ``resumed: true``) and skips the
checkpoints it already holds; a replay of another source starts a new run.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import pickle
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from .._numbers import format_number
from ..probe import FairnessProbe
from ..training.history import HistoryWriter, is_probe, is_run_start, read_history, select_run, split_runs
from ..training.recorder import probe_record
from ..training.records import ProbeRecord
from ..training.sudden_change import SuddenChangeDetector
from .lm_eval_pass import Evaluator, run_evaluators
from .model_loading import DeviceMap, MaxMemory, Placement, load_causal_lm
from .plots import probe_records

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "find_checkpoints",
    "hub_checkpoints",
    "import_factory",
    "load_lightning",
    "Loader",
    "replay",
    "replay_source",
    "ReplaySummary",
    "step_from_name",
]

log = logging.getLogger("fairness_callback")

_STEP_PATTERNS = (r"(?:checkpoint|step|global_step)[-_=]?(\d+)", r"(\d+)$")


class CheckpointError(ValueError):
    """A path that is not a checkpoint this module can read; the message names it."""


@dataclass(frozen=True)
class Checkpoint:
    """One point of a series: where it is, its training step, and how to load it."""

    source: str
    step: int
    kind: Literal["hf", "lightning", "hub"]
    revision: str | None = None

    @property
    def key(self) -> str:
        """What the history records as ``checkpoint`` (a rerun skips keys already there)."""
        return f"{self.source}@{self.revision}" if self.revision else self.source


def step_from_name(name: str) -> int | None:
    """The training step in a checkpoint name: ``checkpoint-1200``, ``step80000``, ``epoch=0-step=500.ckpt``."""
    stem = name[: -len(".ckpt")] if name.endswith(".ckpt") else name
    for pattern in _STEP_PATTERNS:
        match = re.search(pattern, stem)
        if match:
            return int(match.group(1))
    return None


def _is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def find_checkpoints(paths: Sequence[str | os.PathLike], steps: Sequence[int] | None = None) -> list[Checkpoint]:
    """The checkpoints at ``paths`` (expanding folders of ``checkpoint-N``), sorted by step.

    ``steps``, if given, are assigned in the order found (before sorting), one per checkpoint;
    otherwise each step is read from the checkpoint's name.
    """
    found: list[tuple[Path, Literal["hf", "lightning"]]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"checkpoint path {str(path)!r} does not exist")
        if path.is_file() and path.suffix == ".ckpt":
            found.append((path, "lightning"))
        elif path.is_dir() and _is_hf_dir(path):
            found.append((path, "hf"))
        elif path.is_dir() and (
            children := sorted(
                (c for c in path.iterdir() if c.is_dir() and _is_hf_dir(c) and step_from_name(c.name) is not None),
                key=lambda c: step_from_name(c.name) or 0,  # never None: filtered above
            )
        ):
            found.extend((child, "hf") for child in children)
        else:
            raise CheckpointError(
                f"{str(path)!r} is not a checkpoint: expected a save_pretrained directory (with config.json), "
                "a folder of checkpoint-N directories, or a Lightning .ckpt file"
            )
    if steps is not None and len(steps) != len(found):
        raise CheckpointError(f"--steps gives {len(steps)} steps for {len(found)} checkpoints")
    checkpoints = []
    for i, (path, kind) in enumerate(found):
        step = steps[i] if steps is not None else step_from_name(path.name)
        if step is None:
            raise CheckpointError(f"cannot tell the step of {str(path)!r} from its name; give --steps")
        checkpoints.append(Checkpoint(str(path), int(step), kind))
    return sorted(checkpoints, key=lambda c: c.step)


def hub_checkpoints(model_id: str, revisions: Sequence[str], steps: Sequence[int] | None = None) -> list[Checkpoint]:
    """Revisions of one hub model (``step0``, ``step1000``, ... for Pythia)."""
    if steps is not None and len(steps) != len(revisions):
        raise CheckpointError(f"--steps gives {len(steps)} steps for {len(revisions)} revisions")
    checkpoints = []
    for i, revision in enumerate(revisions):
        step = steps[i] if steps is not None else step_from_name(revision)
        if step is None:
            raise CheckpointError(f"cannot tell the step of revision {revision!r}; give --steps")
        checkpoints.append(Checkpoint(model_id, int(step), "hub", revision))
    return sorted(checkpoints, key=lambda c: c.step)


def import_factory(spec: str) -> Callable[[], torch.nn.Module]:
    """``"package.module:function"`` -> the function (it returns the bare causal LM to load weights into)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--model-factory must look like 'package.module:function', got {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--model-factory {spec!r}: {error}") from None


def _matching_prefix(saved: Iterable[str], wanted: set[str]) -> str:
    """The prefix (e.g. ``"model."``) that turns a LightningModule's keys into the bare model's keys."""
    saved = list(saved)
    candidates = {""} | {key[: len(key) - len(w)] for key in saved for w in wanted if key.endswith(w)}
    for prefix in sorted(candidates, key=len):
        if {k[len(prefix) :] for k in saved if k.startswith(prefix)} >= wanted:
            return prefix
    raise CheckpointError("the checkpoint's state_dict does not hold the model factory's weights under any prefix")


def load_lightning(path: str, factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Weights of a Lightning ``.ckpt`` (read with ``weights_only=True``) loaded into ``factory()``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: torch.load(weights_only=True) refused it (it holds pickled objects, e.g. hyper-parameters "
            f"of custom classes); re-save the weights with save_pretrained or a plain state_dict. {error}"
        ) from None
    state = checkpoint.get("state_dict", checkpoint)
    model = factory()
    wanted = set(model.state_dict())
    prefix = _matching_prefix(state, wanted)
    model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix) :] in wanted})
    return model


@dataclass
class Loader:
    """How checkpoints become models: device, dtype, remote code, and the factory for ``.ckpt`` files.

    ``device_map`` (with ``max_memory``, ``offload_folder``) loads each HF folder or hub revision across
    devices with accelerate instead of onto ``device`` (:class:`~fairness_callback.offline.model_loading.Placement`);
    ``device`` is then left at its default. A Lightning ``.ckpt`` (built by the factory) is refused with one.
    """

    device: str = "cpu"
    dtype: torch.dtype | None = None
    trust_remote_code: bool = False
    model_factory: Callable[[], torch.nn.Module] | None = None
    gguf_file: str | None = None
    device_map: DeviceMap | None = None
    max_memory: MaxMemory | str | None = None
    offload_folder: str | None = None

    def __post_init__(self) -> None:
        self.placement()  # a bad combination or device map fails here, not at the first checkpoint

    def placement(self) -> Placement:
        """Where the HF models go: ``device``, or ``device_map`` (then ``device`` must be left at "cpu")."""
        if self.device_map is not None and self.device != "cpu":
            raise ValueError(f"device {self.device!r} and a device map both say where the models go: give one")
        device = None if self.device_map is not None else self.device
        return Placement(device, self.device_map, self.max_memory, self.offload_folder)

    def __call__(self, checkpoint: Checkpoint) -> torch.nn.Module:
        if checkpoint.kind == "lightning":
            if self.model_factory is None:
                raise CheckpointError(f"{checkpoint.source}: a Lightning .ckpt needs --model-factory module:function")
            if self.device_map is not None:
                raise CheckpointError(
                    f"{checkpoint.source}: a device map loads through from_pretrained; a Lightning .ckpt built by "
                    "--model-factory cannot take one (give --device, or save the weights with save_pretrained)"
                )
            model = load_lightning(checkpoint.source, self.model_factory)
            model = model.to(dtype=self.dtype) if self.dtype is not None else model
            return model.to(self.device).eval()
        return load_causal_lm(
            checkpoint.source,
            self.placement(),
            revision=checkpoint.revision,
            dtype=self.dtype or "auto",
            trust_remote_code=self.trust_remote_code,
            gguf_file=self.gguf_file,
        )


@dataclass
class ReplaySummary:
    """What a replay did: checkpoints probed now, skipped as already in the history, and failures."""

    probed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: The run the probes were (or would have been) appended under, and whether it continued a run.
    run_id: str | None = None
    resumed: bool = False


def _key_origin(key: str) -> str:
    """Where a checkpoint key comes from: the hub model of ``model@revision``, else the folder holding it."""
    if "@" in key and not Path(key).exists():
        return key.rsplit("@", 1)[0]
    return str(Path(key).expanduser().resolve().parent)


def replay_source(checkpoints: Sequence[Checkpoint]) -> str:
    """What a replay records as its ``checkpoints`` source: the hub model id, or the (absolute) folder
    holding the checkpoints; several, comma-separated, for a mixed series.

    Replaying ``run/checkpoint-2`` and later the folder ``run`` gives the same source (``run``), so
    the second replay continues the first one's run.
    """
    return ", ".join(sorted({_key_origin(c.key) for c in checkpoints}))


def _run_sources(records: Sequence[dict]) -> set[str]:
    """The replay sources of a run's records: those of its replay ``run_start`` lines, or for a run
    without any (an older file) the origins of its probes' checkpoint keys; empty if not a replay."""
    starts = [r for r in records if is_run_start(r)]
    if starts:
        return {r["checkpoints"] for r in starts if r.get("framework") == "replay" and isinstance(r.get("checkpoints"), str)}
    keys = [r.get("checkpoint") for r in records if is_probe(r)]
    names = [k for k in keys if isinstance(k, str)]
    if not keys or len(names) != len(keys):
        return set()
    return {", ".join(sorted({_key_origin(k) for k in names}))}


def _step_clashes(records: Sequence[dict], todo: Sequence[Checkpoint]) -> list[str]:
    """Checkpoints to probe whose step the run already holds from another checkpoint (another series)."""
    held = {int(r["step"]): r.get("checkpoint") for r in records if is_probe(r) and r.get("step") is not None}
    return [
        f"step {c.step} ({c.key}; the run has it from {held[c.step]})" for c in todo if c.step in held and held[c.step] != c.key
    ]


def _probe_info(probe: FairnessProbe, source: str) -> dict:
    info: dict[str, Any] = {"framework": "replay", "checkpoints": source}
    if getattr(probe, "probe_set", None) is not None:
        info["probe_set"] = getattr(probe.probe_set, "name", None)
    if getattr(probe, "prompts", None) is not None:
        info["num_prompts"] = len(probe.prompts)
    seeds = getattr(getattr(probe, "config", None), "seeds", None)
    if seeds is not None:
        info["seeds"] = list(seeds)
    return info


def _choose_run(
    history_path: Path, previous: list[dict], checkpoints: Sequence[Checkpoint], source: str, run_id: str | None
) -> tuple[str | None, list[dict]]:
    """The run to continue (its id and records), or (None, []) for a new run."""
    if run_id is not None:
        records = select_run(previous, run_id, source=str(history_path))
        clashes = _step_clashes(records, [c for c in checkpoints if c.key not in _done(records)])
        if clashes:
            raise ValueError(
                f"{history_path}: run {run_id!r} cannot take these checkpoints without mixing two series: "
                f"{'; '.join(clashes)}; omit --run-id to start a new run"
            )
        return run_id, records
    for candidate, records in reversed(list(split_runs(previous).items())):
        if source not in _run_sources(records):
            continue
        if _step_clashes(records, [c for c in checkpoints if c.key not in _done(records)]):
            log.info(
                "replay: run %s of %s has the same source but other checkpoints at these steps; starting a new run",
                candidate,
                history_path,
            )
            return None, []
        return candidate, records
    return None, []


def _done(records: Sequence[dict]) -> set:
    return {r.get("checkpoint") for r in records if is_probe(r)}


def resume_point(
    history_path: Path, checkpoints: Sequence[Checkpoint], source: str, run_id: str | None, strict: bool
) -> tuple[str | None, list[dict], list[Checkpoint], list[int]]:
    """Where a replay of ``checkpoints`` into ``history_path`` starts: the run it continues (None:
    a new one) and that run's lines (:func:`_choose_run`), the checkpoints left to probe, and the
    steps of those the run already holds."""
    previous = read_history(history_path, strict) if history_path.exists() else []
    continued, run_records = _choose_run(history_path, previous, checkpoints, source, run_id)
    done = _done(run_records)
    todo = [c for c in checkpoints if c.key not in done]
    return continued, run_records, todo, [c.step for c in checkpoints if c.key in done]


def replay(
    checkpoints: Sequence[Checkpoint],
    probe: FairnessProbe,
    history_path: str | os.PathLike,
    loader: Callable[[Checkpoint], torch.nn.Module],
    progress: bool = True,
    run_id: str | None = None,
    source: str | None = None,
    strict: bool = False,
    evaluators: Sequence[Evaluator] = (),
) -> ReplaySummary:
    """Probe every checkpoint not yet in the replay's run of ``history_path`` and append one line each, in step order.

    The run: ``run_id`` if given (it must be in the file; ValueError listing the file's runs
    otherwise, or if it holds other checkpoints at the same steps), else the latest run of the
    file that replayed the same ``source`` (default :func:`replay_source` of ``checkpoints``),
    else a new run. Only that run's lines decide what is skipped. A ``run_start`` line (``resumed``
    when continuing) is written before the first new probe line; nothing is written when nothing
    new is probed. A checkpoint that fails to load or probe is reported and skipped (and tried
    again by a rerun); the rest go on. An unparseable line of the history is named in a warning
    and skipped (``strict``: a ValueError naming it instead). ``evaluators`` run on each checkpoint's
    model after the probe and add their values to its line (``lm_eval/<task>/acc``: see
    :mod:`fairness_callback.offline.lm_eval_pass`); one that fails is named there and the line is written.
    """
    from tqdm.auto import tqdm

    from .replay_ranks import RankGroup, replay_on_ranks

    group = RankGroup.from_env()
    if group is not None:
        return replay_on_ranks(group, checkpoints, probe, history_path, loader, progress, run_id, source, strict, evaluators)
    history_path = Path(history_path)
    source = source if source is not None else replay_source(checkpoints)
    continued, run_records, todo, skipped = resume_point(history_path, checkpoints, source, run_id, strict)
    detector = gap_detector(run_records)
    writer = HistoryWriter(history_path, continued)
    summary = ReplaySummary(run_id=writer.run_id, resumed=continued is not None, skipped=skipped)
    started = False
    bar = tqdm(todo, desc="replay", unit="ckpt", disable=not progress)
    for checkpoint in bar:
        bar.set_postfix_str(f"step {checkpoint.step}")
        try:
            record = probe_checkpoint(checkpoint, probe, loader, evaluators)
        except Exception as error:  # noqa: BLE001 - one bad checkpoint must not end the series
            log.error("checkpoint %s (step %d) failed and is skipped: %s", checkpoint.key, checkpoint.step, error)
            summary.failed.append((checkpoint.key, f"{type(error).__name__}: {error}"))
            continue
        record = with_sudden_flag(record, detector)
        if not started:
            writer.start_run(_probe_info(probe, source), resumed=continued is not None)
            started = True
        writer.append(record)
        summary.probed.append(checkpoint.step)
        bar.write(describe_probe(record))
    return summary


def probe_checkpoint(
    checkpoint: Checkpoint,
    probe: FairnessProbe,
    loader: Callable[[Checkpoint], torch.nn.Module],
    evaluators: Sequence[Evaluator] = (),
) -> ProbeRecord:
    """Load ``checkpoint``, probe it, run ``evaluators`` on the same model and free it: its probe
    line, without the sudden-change flag (:func:`with_sudden_flag` adds it, in step order). Raises
    what loading or probing raised (an evaluator's failure is named in the line instead)."""
    model = None
    try:
        start = time.perf_counter()
        model = loader(checkpoint)
        loaded = time.perf_counter()
        result = probe.run(model)
        seconds = time.perf_counter() - loaded
        evaluated = run_evaluators(evaluators, model, checkpoint)  # never raises: failures are named in it
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    extra = {"checkpoint": checkpoint.key, "load_seconds": loaded - start, **evaluated}
    return probe_record(checkpoint.step, result, seconds, {}, extra)


def gap_key_of(values: Mapping[str, Any]) -> str:
    """The gap a replay's sudden-change flag watches: ``jsdp/gap``, else the first probe's ``<name>/jsdp/gap``."""
    return "jsdp/gap" if "jsdp/gap" in values else next(k for k in values if k.endswith("/jsdp/gap"))


def gap_detector(run_records: Sequence[dict]) -> SuddenChangeDetector:
    """A sudden-change detector fed with the gaps a run already holds, in step order."""
    detector = SuddenChangeDetector()
    for line in probe_records(run_records):
        gap = line.get("jsdp/gap")
        detector.update(gap if gap is not None else float("nan"))
    return detector


def with_sudden_flag(record: ProbeRecord, detector: SuddenChangeDetector) -> ProbeRecord:
    """``record`` with ``jsdp/gap_sudden``: the detector's verdict on its gap (fed in step order)."""
    gap = record.values[gap_key_of(record.values)]
    flag = detector.update(gap if gap is not None else float("nan"))
    return replace(record, values={**record.values, "jsdp/gap_sudden": flag})


def describe_probe(record: ProbeRecord) -> str:
    """``step 4: load 0.1 s, probe 2.0 s, jsdp/gap +0.0123 (p=0.5)``: a replayed checkpoint's line on the console."""
    key = gap_key_of(record.values)
    p = record.values.get(key.replace("jsdp/gap", "mwu_p/jsdp"))
    return (
        f"step {record.step}: load {record.values['load_seconds']:.1f} s, probe {record.probe_seconds or 0.0:.1f} s, "
        f"{key} {format_number(record.values[key], '+.4f')} (p={format_number(p, '.2g')})"
    )
