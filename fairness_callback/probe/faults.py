"""What a failed probe is, in a form every rank can agree on.

A probe may fail on one rank only (an out-of-memory on the rank with the least headroom, a bad
batch, a bug). Whatever fails, every rank must go on issuing the same collectives in the same
order, or the others wait forever (NCCL) or abort (gloo). The probe and the tracker therefore
never let an exception skip a collective: they catch it, take part in one small all-reduce that
says whether any rank failed, and only then raise, on every rank alike, a :class:`ProbeFailure`
that names the ranks and the first line of each error.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

import torch

__all__ = [
    "describe",
    "is_out_of_memory",
    "ProbeFailure",
    "release_memory",
]


def describe(error: BaseException) -> str:
    """``"Type: first line of the message"``, as failures are reported across ranks."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator's or the allocator's out-of-memory error (CUDA, ROCm, XPU, MPS, CPU)."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def release_memory(device: torch.device) -> None:
    """Return what a failed forward left cached to the allocator (after its tensors are dropped)."""
    gc.collect()
    if device.type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class ProbeFailure(RuntimeError):
    """A probe failed on one or more ranks; raised on every rank alike.

    Attributes:
        ranks: ``{rank: "Type: first line"}`` of every rank whose part failed.
        probe: the probe's name in a suite, or None.
    """

    def __init__(self, ranks: Mapping[int, str], probe: str | None = None) -> None:
        self.ranks = dict(sorted(ranks.items()))
        self.probe = probe
        where = f"probe {probe!r}" if probe else "the probe"
        super().__init__(
            f"{where} failed on rank(s) {', '.join(map(str, self.ranks))}: "
            + "; ".join(f"rank {rank}: {text}" for rank, text in self.ranks.items())
        )

    @property
    def error_type(self) -> str:
        """The error type on the lowest failing rank (``"OutOfMemoryError"``, ``"KeyError"``, ...)."""
        return next(iter(self.ranks.values())).partition(":")[0]
