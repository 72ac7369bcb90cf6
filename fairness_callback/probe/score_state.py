"""The probe's per-prompt score table as a torchmetrics state, synced with one all-reduce.

Its own module so that ``import fairness_callback`` does not import torchmetrics (about 0.9 s, and
``torchmetrics.utilities.plot`` pulls in matplotlib when installed): :meth:`FairnessProbe.score`
imports it when it first scores.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torchmetrics import Metric

__all__ = [
    "ProbeScoreState",
]


def _all_reduce_sync(tensor: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """torchmetrics ``dist_sync_fn`` that sums with one all-reduce instead of an all-gather."""
    reduced = tensor.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM, group=group)
    return [reduced]


class ProbeScoreState(Metric):
    """Per-prompt scores as one ``[N, 2K + 1]`` float64 sum state: K ranks, K log-probs, a scored flag.

    ``update`` writes the rows a rank scored; rows it did not score stay zero, so the sum over
    ranks is every row exactly once. ``compute`` syncs (one all-reduce) when distributed and
    returns NaN for rows no rank scored.
    """

    full_state_update = False
    table: torch.Tensor  # the state add_state registers in __init__ (nn.Module's __getattr__ would type it Tensor | Module)

    def __init__(self, num_prompts: int, num_options: int, distributed: bool = False) -> None:
        super().__init__(sync_on_compute=distributed, dist_sync_fn=_all_reduce_sync)
        self.num_options = num_options
        self.add_state("table", default=torch.zeros(num_prompts, 2 * num_options + 1, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, indices: torch.Tensor, ranks: torch.Tensor, logprobs: torch.Tensor) -> None:
        flag = torch.ones(len(indices), 1, dtype=torch.float64)
        rows = torch.cat([ranks.double(), logprobs.double(), flag], dim=1).to(self.table.device)
        self.table[indices.to(self.table.device)] = rows

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        table = self.table.cpu()
        table[table[:, -1] == 0] = float("nan")
        k = self.num_options
        return table[:, :k], table[:, k : 2 * k].float()
