"""Score encoded prompts with a causal LM in memory: batched, last position only, no autograd.

For each prompt the scorer keeps just what the metrics need: every option token's rank among
the whole vocabulary and its log-probability under the full-vocabulary softmax (float32).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch

from .encoding import Batch, PrefixBatch
from .packing import TreeBatch
from .metrics import option_ranks


@dataclass
class OptionScores:
    """Per-prompt scores, one row per prompt, one column per answer group (``GROUPS`` order).

    ``ranks`` are 1-based vocabulary ranks (float64 so that a non-finite row can hold NaN);
    ``logprobs`` are full-vocabulary log-softmax values in float32; ``prefix_sharing`` is the
    path that scored them (``"tree"``, ``"cache"`` or ``"off"``).
    """

    ranks: torch.Tensor
    logprobs: torch.Tensor
    prefix_sharing: str = "off"


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


def forward_target(model: torch.nn.Module) -> torch.nn.Module:
    """What to call for an inference forward: DDP's inner module (its replicas need no sync),
    anything else as it is (FSDP must be called through its hooks to gather its shards)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def forward_options(model: torch.nn.Module) -> dict[str, bool]:
    """Which of the optional keyword arguments the model's forward accepts by name."""
    params = inspect.signature(unwrap_model(model).forward).parameters
    return {name: name in params for name in ("logits_to_keep", "position_ids", "use_cache", "cache", "past_key_values")}


#: Architectures on which both prefix-sharing paths (the token tree and the key/value cache) give
#: the plain path's numbers; each is tested with a tiny random model, GPT-NeoX, GPT-2 and Llama
#: also with full and partial sentences.
PREFIX_SHARING_MODEL_TYPES = frozenset({"gpt_neox", "gpt2", "llama", "mistral", "qwen2", "olmo", "olmo2", "gemma", "phi3"})


def supports_prefix_cache(model: torch.nn.Module) -> bool:
    """True if the model takes a cache argument and its architecture is known to work with one."""
    inner = unwrap_model(model)
    accepts = forward_options(model)
    model_type = getattr(getattr(inner, "config", None), "model_type", None)
    return (accepts["cache"] or accepts["past_key_values"]) and model_type in PREFIX_SHARING_MODEL_TYPES


#: Attention implementations that apply a custom 4D mask as given (flash attention does not take one).
TREE_ATTENTION_IMPLEMENTATIONS = frozenset({"sdpa", "eager"})


def supports_tree_attention(model: torch.nn.Module) -> bool:
    """True if prompts packed as a token tree (one row per sentence, a 4D mask) score as they do alone:
    an architecture of :data:`PREFIX_SHARING_MODEL_TYPES`, transformers >= 5 (whose mask functions
    pass a 4D mask through unchanged), an sdpa or eager attention, and ``position_ids`` and
    ``logits_to_keep`` arguments."""
    import transformers

    inner = unwrap_model(model)
    config = getattr(inner, "config", None)
    accepts = forward_options(model)
    return (
        int(transformers.__version__.split(".")[0]) >= 5
        and getattr(config, "model_type", None) in PREFIX_SHARING_MODEL_TYPES
        and getattr(config, "_attn_implementation", None) in TREE_ATTENTION_IMPLEMENTATIONS
        and accepts["position_ids"]
        and accepts["logits_to_keep"]
    )


def tree_last_logits(model: torch.nn.Module, batch: TreeBatch) -> torch.Tensor:
    """Next-token logits [prompts, V] of prompts packed as token trees, in the order of ``batch.slots``."""
    mask = batch.attention_mask()
    if getattr(unwrap_model(model).config, "_attn_implementation", None) == "eager":
        # Eager attention adds the mask to the scores; sdpa takes the boolean one as it is.
        mask = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(
            ~mask, torch.finfo(torch.float32).min)
    slots = batch.slots.shape[1]
    output = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids,
                   use_cache=False, logits_to_keep=slots)
    return output.logits[:, -slots:, :][batch.slots]


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


def prefix_last_logits(model: torch.nn.Module, batch: PrefixBatch, accepts: dict[str, bool]) -> torch.Tensor:
    """Last-position logits [B, V] of prompts run as a cached shared prefix plus their own suffix."""
    cache_arg = "cache" if accepts["cache"] else "past_key_values"
    prefix = batch.prefix
    output = model(input_ids=prefix.input_ids, attention_mask=prefix.attention_mask, position_ids=prefix.position_ids,
                   use_cache=True, **({"logits_to_keep": 1} if accepts["logits_to_keep"] else {}))
    cache = output.get("cache") if "cache" in output else output.get("past_key_values")
    cache.reorder_cache(batch.rows)  # one cache row per prompt (its sentence's prefix)
    suffix = batch.suffix
    mask = torch.cat([prefix.attention_mask[batch.rows], suffix.attention_mask], dim=1)
    kwargs = {"input_ids": suffix.input_ids, "attention_mask": mask, "position_ids": suffix.position_ids,
              cache_arg: cache, "use_cache": True}
    if accepts["logits_to_keep"]:
        kwargs["logits_to_keep"] = 1
    return model(**kwargs).logits[:, -1, :]


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


def iter_scores(
    model: torch.nn.Module, batches: Iterable[Batch | PrefixBatch | TreeBatch], answer_ids: Sequence[int]
) -> Iterator[tuple[Batch | PrefixBatch | TreeBatch, torch.Tensor, torch.Tensor]]:
    """Run ``batches`` (plain, prefix-cached or tree-packed) through ``model``; yield each with its ranks and
    log-probs (on CPU). Warns once at the end if any prompt gave non-finite logits (its row is NaN).
    """
    accepts = forward_options(model)
    device = model_device(model)
    model = forward_target(model)
    answers = torch.tensor(list(answer_ids), device=device)
    bad = 0
    for batch in batches:
        on_device = batch.to(device)
        if isinstance(batch, TreeBatch):
            logits = tree_last_logits(model, on_device)
        elif isinstance(batch, PrefixBatch):
            logits = prefix_last_logits(model, on_device, accepts)
        else:
            logits = last_token_logits(model, on_device, accepts)
        ranks, logprobs = score_logits(logits, answers)
        del logits
        bad += int(torch.isnan(ranks[:, 0]).sum())
        yield batch, ranks.cpu(), logprobs.cpu()
    if bad:
        warnings.warn(f"{bad} prompt(s) gave non-finite logits; their metrics are NaN", RuntimeWarning, stacklevel=2)


def model_device(model: torch.nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")
