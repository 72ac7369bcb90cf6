"""Score encoded prompts with a causal LM in memory: batched, last position only, no autograd.

For each prompt the scorer keeps just what the metrics need: every option token's rank among
the whole vocabulary and its log-probability under the full-vocabulary softmax (float32).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Iterable

import torch

from .encoding import Batch, EncodedPrompts
from .metrics import option_ranks


@dataclass
class OptionScores:
    """Per-prompt scores, one row per prompt, one column per answer group (``GROUPS`` order).

    ``ranks`` are 1-based vocabulary ranks (float64 so that a non-finite row can hold NaN);
    ``logprobs`` are full-vocabulary log-softmax values in float32.
    """

    ranks: torch.Tensor
    logprobs: torch.Tensor

    @classmethod
    def empty(cls, num_prompts: int, num_options: int) -> "OptionScores":
        nan = float("nan")
        return cls(
            torch.full((num_prompts, num_options), nan, dtype=torch.float64),
            torch.full((num_prompts, num_options), nan, dtype=torch.float32),
        )


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose ``forward`` signature tells which keyword arguments it takes.

    DDP and ``torch.compile`` wrap the model; calling the wrapper is right (DDP/FSDP hooks run),
    but its signature is ``*args, **kwargs``.
    """
    inner = model
    for attr in ("module", "_orig_mod"):
        while hasattr(inner, attr) and isinstance(getattr(inner, attr), torch.nn.Module):
            inner = getattr(inner, attr)
    return inner


def forward_options(model: torch.nn.Module) -> dict[str, bool]:
    """Which of the optional keyword arguments the model's forward accepts by name."""
    params = inspect.signature(unwrap_model(model).forward).parameters
    return {name: name in params for name in ("logits_to_keep", "position_ids", "use_cache")}


def last_token_logits(model: torch.nn.Module, batch: Batch, accepts: dict[str, bool]) -> torch.Tensor:
    """Logits at the last position of a left-padded batch, shape [B, V]."""
    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    if accepts["position_ids"]:
        kwargs["position_ids"] = batch.position_ids
    if accepts["logits_to_keep"]:
        kwargs["logits_to_keep"] = 1
    if accepts["use_cache"]:
        kwargs["use_cache"] = False
    output = model(**kwargs)
    logits = output.logits if hasattr(output, "logits") else (output[0] if isinstance(output, (tuple, list)) else output)
    # Left padding puts every prompt's last real token at position -1.
    return logits[:, -1, :]


def score_logits(logits: torch.Tensor, answer_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks [B, K] and full-vocabulary log-probs [B, K] of the answer tokens; NaN rows where non-finite."""
    logits = logits.float()
    ranks = option_ranks(logits, answer_ids)
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, answer_ids.expand(logits.shape[0], -1))
    finite = torch.isfinite(logits).all(dim=-1)
    ranks = ranks.to(torch.float64)
    if not bool(finite.all()):
        ranks[~finite] = float("nan")
        logprobs[~finite] = float("nan")
    return ranks, logprobs


def score_batches(model: torch.nn.Module, batches: Iterable[Batch], encoded: EncodedPrompts, into: OptionScores) -> int:
    """Run ``batches`` through ``model`` and fill their rows of ``into``; returns the non-finite row count."""
    accepts = forward_options(model)
    device = _model_device(model)
    answer_ids = torch.tensor(encoded.answers.ids, device=device)
    bad = 0
    for batch in batches:
        logits = last_token_logits(model, batch.to(device), accepts)
        ranks, logprobs = score_logits(logits, answer_ids)
        bad += int(torch.isnan(ranks[:, 0]).sum())
        into.ranks[batch.indices] = ranks.cpu()
        into.logprobs[batch.indices] = logprobs.cpu()
    if bad:
        warnings.warn(f"{bad} prompt(s) gave non-finite logits; their metrics are NaN", RuntimeWarning, stacklevel=2)
    return bad


def _model_device(model: torch.nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")
