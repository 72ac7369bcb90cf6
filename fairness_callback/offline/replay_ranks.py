"""Replay on many processes: the checkpoints of a series split over the ranks that ``torchrun`` starts.

``torchrun --nproc_per_node 8 -m fairness_callback replay run/ --history h.jsonl`` (and
``--nnodes``/rendezvous across machines that share the history's folder) runs
:func:`fairness_callback.offline.replay.replay` on every rank; it comes here when the environment
names a world of more than one process (``WORLD_SIZE``). The ranks agree, through rank 0, on the
run (the one a one-process replay would continue, or a new one) and on what is left to probe;
rank ``r`` of ``W`` takes every W-th of those checkpoints in step order, loads each onto its own
device (``cuda:LOCAL_RANK`` for ``--device cuda``; the CPU with gloo) and appends its line,
flushed, to a file of its own beside the history (``<history>.ranks/rank-<r>.jsonl``). No
collective runs while they work, so one rank's failure or death costs only its checkpoint in
flight. At the end rank 0 merges the ranks' lines into the history in step order, adding each
line's sudden-change flag as a one-process replay would, and removes the rank files; a rerun
first merges what an interrupted run left, so it never probes a finished checkpoint again.
The lines are those of a one-process replay, value for value (times aside).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..probe import FairnessProbe
from ..training.history import HistoryWriter, read_history, read_records, select_run
from ..training.records import ProbeRecord
from .lm_eval_pass import Evaluator
from .replay import (
    Checkpoint,
    Loader,
    ReplaySummary,
    _done,
    _probe_info,
    describe_probe,
    gap_detector,
    probe_checkpoint,
    replay_source,
    resume_point,
    with_sudden_flag,
)

__all__ = ["RankGroup", "merge_rank_files", "rank_files", "replay_on_ranks"]

log = logging.getLogger("fairness_callback")

#: How long the ranks wait for each other at the start and the end (the slowest rank's share of
#: the series may take hours; a dead rank is torchrun's to notice, not this timeout's).
WAIT = timedelta(hours=24)


@dataclass(frozen=True)
class RankGroup:
    """This process's place in the replay's world: its rank, the world size, its local rank, and
    whether it started the process group (and so ends it)."""

    rank: int
    size: int
    local_rank: int
    owns_group: bool

    @classmethod
    def from_env(cls) -> RankGroup | None:
        """The world ``torchrun`` describes (``WORLD_SIZE`` > 1, or a process group already
        running), joined with gloo if no group runs yet; None for one process."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False)
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        dist.init_process_group("gloo", timeout=WAIT)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)

    def end(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def rank_files(history_path: str | os.PathLike) -> Path:
    """The folder of the ranks' own files beside ``history_path``."""
    path = Path(history_path)
    return path.with_name(path.name + ".ranks")


def merge_rank_files(history_path: str | os.PathLike, strict: bool = False) -> int:
    """Append the probe lines the ranks' files hold and the history does not (per run, by
    checkpoint) to the history, in step order with their sudden-change flags; remove the files.
    Returns the number of lines appended."""
    history_path = Path(history_path)
    folder = rank_files(history_path)
    if not folder.is_dir():
        return 0
    files = sorted(folder.glob("rank-*.jsonl"))
    lines = [r for f in files for r in read_records(f, strict=False) if isinstance(r, ProbeRecord) and r.run_id]
    previous = read_history(history_path, strict) if history_path.exists() else []
    appended = 0
    for run_id in dict.fromkeys(r.run_id for r in lines):
        run = select_run(previous, run_id) if any(r.get("run_id") == run_id for r in previous) else []
        done = _done(run)
        new: dict[Any, ProbeRecord] = {}
        for record in sorted((r for r in lines if r.run_id == run_id), key=lambda r: r.step):
            key = record.values.get("checkpoint")
            if key not in done:
                new.setdefault(key, record)
        detector = gap_detector(run)
        writer = HistoryWriter(history_path, run_id)
        for record in new.values():
            writer.append(with_sudden_flag(record, detector))
            appended += 1
    for f in files:
        f.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()
    return appended


def _device(loader: Callable[[Checkpoint], torch.nn.Module], local_rank: int) -> Callable[[Checkpoint], torch.nn.Module]:
    """The loader, onto this rank's own GPU when it loads onto CUDA without an index."""
    if isinstance(loader, Loader) and loader.device_map is not None and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "--device-map spreads each model over the machine's devices: run one rank per machine "
            "(torchrun --nproc_per_node 1 --nnodes N), or give each rank one GPU with --device cuda"
        )
    if isinstance(loader, Loader) and torch.device(loader.device).type == "cuda" and torch.device(loader.device).index is None:
        torch.cuda.set_device(local_rank)
        return replace(loader, device=f"cuda:{local_rank}")
    return loader


def replay_on_ranks(
    group: RankGroup,
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
    """:func:`~fairness_callback.offline.replay.replay` on ``group``'s ranks (see the module
    docstring); every rank returns the same summary, of the whole series."""
    from tqdm.auto import tqdm

    history_path = Path(history_path)
    source = source if source is not None else replay_source(checkpoints)
    try:
        load = _device(loader, group.local_rank)
        plan: list[Any] = [None]
        if group.rank == 0:
            plan[0] = _plan(history_path, checkpoints, probe, source, run_id, strict)
        dist.broadcast_object_list(plan, src=0)
        if isinstance(plan[0], BaseException):
            raise plan[0]
        chosen_run, resumed, todo_keys, skipped = plan[0]
        todo = [c for c in checkpoints if c.key in set(todo_keys)]
        mine = todo[group.rank :: group.size]
        folder = rank_files(history_path)
        folder.mkdir(parents=True, exist_ok=True)
        writer = HistoryWriter(folder / f"rank-{group.rank}.jsonl", chosen_run)
        probed: list[int] = []
        failed: list[tuple[str, str]] = []
        bar = tqdm(mine, desc=f"replay rank {group.rank}", unit="ckpt", disable=not progress or group.rank != 0)
        for checkpoint in bar:
            try:
                record = probe_checkpoint(checkpoint, probe, load, evaluators)
            except Exception as error:  # noqa: BLE001 - one bad checkpoint must not end the series
                log.error(
                    "rank %d: checkpoint %s (step %d) failed and is skipped: %s",
                    group.rank,
                    checkpoint.key,
                    checkpoint.step,
                    error,
                )
                failed.append((checkpoint.key, f"{type(error).__name__}: {error}"))
                continue
            writer.append(record)
            probed.append(checkpoint.step)
            bar.write(f"rank {group.rank}: {describe_probe(record)}")
        outcomes: list[Any] = [None] * group.size
        dist.all_gather_object(outcomes, (probed, failed))
        if group.rank == 0:
            merge_rank_files(history_path, strict)
        dist.barrier()
        return ReplaySummary(
            probed=sorted(step for steps, _ in outcomes for step in steps),
            skipped=skipped,
            failed=[f for _, fails in outcomes for f in fails],
            run_id=chosen_run,
            resumed=resumed,
        )
    finally:
        group.end()


def _plan(
    history_path: Path, checkpoints: Sequence[Checkpoint], probe: FairnessProbe, source: str, run_id: str | None, strict: bool
) -> tuple[str, bool, list[str], list[int]] | BaseException:
    """Rank 0's part before the work: merge what an interrupted run left, choose the run as a
    one-process replay would, write its run-start line if anything is left to probe; the run id,
    whether it continues, the keys to probe and the steps skipped (or the error, for every rank to raise)."""
    try:
        merged = merge_rank_files(history_path, strict)
        if merged:
            log.info("replay: %d line(s) of an interrupted replay merged into %s", merged, history_path)
        continued, _, todo, skipped = resume_point(history_path, checkpoints, source, run_id, strict)
        writer = HistoryWriter(history_path, continued)
        if todo:
            writer.start_run({**_probe_info(probe, source), "ranks": dist.get_world_size()}, resumed=continued is not None)
        return writer.run_id, continued is not None, [c.key for c in todo], skipped
    except (ValueError, OSError) as error:
        return error
