"""What the probe needs from ``torch.distributed``: equal shards, one all-reduce, one vote.

Every rank scores an equal share of the prompts (padded with a repeated prompt whose result is
dropped), so every rank makes the same number of forward calls: a sharded model (FSDP, ZeRO-3)
that needs every rank in each forward cannot hang. The per-prompt scores live in a torchmetrics
sum state, zero except on the rows a rank scored, so one all-reduce gives every rank every row
(:class:`~fairness_callback.probe.score_state.ProbeScoreState`, imported only when a probe scores).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "any_rank",
    "from_rank_zero",
    "gather_from_ranks",
    "is_rank_zero",
    "max_over_ranks",
    "shard_indices",
    "world",
]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_rank_zero() -> bool:
    return world()[0] == 0


def shard_indices(lengths: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, int]:
    """This rank's prompt indices and how many of them are real (the rest are padding).

    Prompts are dealt round-robin in length order, so every rank gets prompts of similar lengths
    and the same count; the last shards are padded by repeating a prompt.
    """
    order = torch.argsort(lengths, stable=True)
    per_rank = -(-len(order) // world_size)
    mine = order[rank::world_size]
    real = len(mine)
    if real < per_rank:
        mine = torch.cat([mine, order[-1:].repeat(per_rank - real)])
    return mine, real


def max_over_ranks(values: list[int]) -> list[int]:
    """Element-wise maximum of small integers over all ranks (one all-reduce; as given when not distributed)."""
    if world()[1] == 1:
        return list(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def from_rank_zero(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (one broadcast; ``value`` as given when not distributed)."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_from_ranks(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order (one all-gather; ``[value]`` when not distributed).

    Only for what is small and rare: the probe calls it when some rank failed, to learn why.
    """
    if world()[1] == 1:
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is True on any rank."""
    return bool(max_over_ranks([int(flag)])[0])


def __getattr__(name: str) -> Any:
    # ProbeScoreState lives in score_state (torchmetrics costs ~0.9 s to import); still importable from here.
    if name == "ProbeScoreState":
        from ..probe.score_state import ProbeScoreState

        return ProbeScoreState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
