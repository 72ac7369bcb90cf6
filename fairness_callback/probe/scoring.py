"""Score encoded prompts with a causal LM in memory: batched, last position only, no autograd.

For each prompt the scorer keeps just what the metrics need: every option token's rank among
the whole vocabulary and its log-probability under the full-vocabulary softmax (float32).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

from .encoding import Batch, PrefixBatch
from .metrics import option_ranks
from .packing import TreeBatch

__all__ = [
    "choose_path",
    "dispatch_devices",
    "dispatched_input_device",
    "forward_options",
    "forward_target",
    "iter_scores",
    "keep_positions",
    "last_token_logits",
    "model_device",
    "OptionScores",
    "prefix_last_logits",
    "PREFIX_SHARING_MODEL_TYPES",
    "score_logits",
    "TREE_ATTENTION_IMPLEMENTATIONS",
    "tree_last_logits",
    "unwrap_model",
    "wrapper_chain",
]


@dataclass
class OptionScores:
    """Per-prompt scores, one row per prompt, one column per answer group (the task's group order).

    ``ranks`` are 1-based vocabulary ranks (float64 so that a non-finite row can hold NaN);
    ``logprobs`` are full-vocabulary log-softmax values in float32; ``prefix_sharing`` is the
    path that scored them (``"tree"``, ``"cache"`` or ``"off"``).
    """

    ranks: torch.Tensor
    logprobs: torch.Tensor
    prefix_sharing: str = "off"


#: Wrapper attributes that hold the wrapped module, outermost first: DDP, DeepSpeed engines, FSDP1 and
#: accelerate's wrappers use ``module``; ``torch.compile`` uses ``_orig_mod``.
_WRAPPED_ATTRS = ("module", "_orig_mod")


def _peft_inner(model: torch.nn.Module) -> torch.nn.Module | None:
    """The transformers model inside a PEFT ``PeftModel`` (its adapters are layers injected into it), else None."""
    if not (hasattr(type(model), "get_base_model") and hasattr(model, "peft_config")):
        return None
    peft: Any = model  # get_base_model is PeftModel's method (nn.Module types an attribute as Tensor | Module)
    return peft.get_base_model()


def wrapper_chain(model: torch.nn.Module) -> list[torch.nn.Module]:
    """``model`` and every module it wraps, outermost first; the last is the bare model.

    Sees through DDP, FSDP1, DeepSpeed engines and accelerate wrappers (``.module``),
    ``torch.compile`` (``._orig_mod``) and PEFT (``PeftModel.get_base_model()``), in any nesting.
    """
    chain = [model]
    while True:
        inner = _peft_inner(chain[-1])
        if inner is None:
            inner = next(
                (getattr(chain[-1], a) for a in _WRAPPED_ATTRS if isinstance(getattr(chain[-1], a, None), torch.nn.Module)), None
            )
        if inner is None:
            return chain
        chain.append(inner)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model: the one whose ``config`` and ``forward`` signature say what it takes.

    A wrapper's own ``forward`` is ``*args, **kwargs`` (PEFT's names only a few arguments and
    passes the rest through), so what the model accepts cannot be read from the wrapper.
    """
    return wrapper_chain(model)[-1]


def forward_target(model: torch.nn.Module) -> torch.nn.Module:
    """What to call for the probe's inference forward.

    DDP and DeepSpeed engines: their inner module (replicas need no gradient sync; ZeRO-3 gathers
    through hooks on the module itself). ``torch.compile``: the original module, run eagerly, so
    the probe's new shapes never recompile (or evict) the training graph. Everything else as it
    is: FSDP (1 and 2) must be called through its hooks to gather its shards, and a ``PeftModel``
    passes ``position_ids`` / ``logits_to_keep`` / a 4D mask through to its base model with its
    adapters active.
    """
    from torch.nn.parallel import DistributedDataParallel

    target = model
    while True:
        if isinstance(target, DistributedDataParallel) or type(target).__name__ in ("DeepSpeedEngine", "PipelineEngine"):
            target = cast(torch.nn.Module, target.module)
        elif isinstance(getattr(target, "_orig_mod", None), torch.nn.Module):
            target = cast(torch.nn.Module, target._orig_mod)
        else:
            return target


def forward_options(model: torch.nn.Module) -> dict[str, bool]:
    """Which of the optional keyword arguments the (unwrapped) model's forward accepts by name.

    ``logits_to_keep_tensor``: its ``logits_to_keep`` is annotated to take a tensor of positions
    (transformers' models say ``int | torch.Tensor``), see :func:`keep_positions`; never on a model
    dispatched by accelerate over several devices (:func:`dispatch_devices`): the model indexes its
    last hidden states, on the last layer's device, with the positions, which accelerate's hook has
    moved to the first layer's device (a CUDA tensor cannot be indexed from another GPU), so the
    int's slice is taken there.
    """
    params = inspect.signature(unwrap_model(model).forward).parameters
    options = {name: name in params for name in ("logits_to_keep", "position_ids", "use_cache", "cache", "past_key_values")}
    options["logits_to_keep_tensor"] = (
        options["logits_to_keep"] and "Tensor" in str(params["logits_to_keep"].annotation) and len(dispatch_devices(model)) < 2
    )
    return options


def keep_positions(count: int, length: int, accepts: dict[str, bool], device: torch.device) -> int | torch.Tensor:
    """``logits_to_keep`` for the last ``count`` of ``length`` positions.

    As the tensor of those positions where the model takes one, else as the int. The int makes
    the model slice its final hidden state ``[B, L, H]`` to ``[B, count, H]``: a view that is not
    contiguous. ``torch.matmul`` folds such an input into one ``mm`` with the head only when the
    head's weight requires grad; a frozen head (every PEFT / LoRA / QLoRA model, or any model after
    ``requires_grad_(False)``) takes ``bmm`` over the weight broadcast to ``[B, H, V]``. On the
    CPU in bfloat16 / float16 that copies the whole head once per row (a LoRA model over a bf16
    base probed 6-9x slower than the bare one, issue #20); on a GPU it is a batched matmul over
    the broadcast head instead of one matmul (not measured here).
    Indexing with a tensor of positions copies the ``B x count x H`` hidden states into a
    contiguous tensor instead, and the head runs one ``mm`` whatever its ``requires_grad``. Same
    numbers: bit for bit those of the folded ``mm`` that a trainable head already took.
    """
    if not accepts.get("logits_to_keep_tensor"):
        return count
    return torch.arange(length - count, length, device=device)


#: Architectures on which both prefix-sharing paths (the token tree and the key/value cache) give
#: the plain path's numbers; each is tested with a tiny random model, GPT-NeoX, GPT-2 and Llama
#: also with full and partial sentences.
PREFIX_SHARING_MODEL_TYPES = frozenset({"gpt_neox", "gpt2", "llama", "mistral", "qwen2", "olmo", "olmo2", "gemma", "phi3"})

#: Attention implementations that apply a custom 4D mask as given (flash attention does not take one).
TREE_ATTENTION_IMPLEMENTATIONS = frozenset({"sdpa", "eager"})


def _prompt_learning_adapter(chain: Sequence[torch.nn.Module]) -> str | None:
    """The PEFT type of an active prompt-learning adapter (prefix / prompt tuning: virtual tokens that
    packed rows and caches cannot carry) among the wrappers, else None."""
    for module in chain:
        config = getattr(module, "active_peft_config", None) if _peft_inner(module) is not None else None
        if config is not None and getattr(config, "is_prompt_learning", False):
            peft_type = getattr(config, "peft_type", "prompt-learning")
            return str(getattr(peft_type, "value", peft_type))
    return None


def choose_path(model: torch.nn.Module, requested: str = "auto") -> tuple[str, str]:
    """The scoring path for ``model`` and why: ``("tree" | "cache" | "off", reason)``.

    The one place that decides. ``requested`` is ``FairnessProbe(prefix_sharing=...)``: "auto"
    takes the token tree where it is known to be exact (an architecture of
    :data:`PREFIX_SHARING_MODEL_TYPES`, transformers >= 5, whose mask functions pass a 4D mask
    through, an sdpa or eager attention, ``position_ids`` and ``logits_to_keep`` arguments), else
    the key/value cache for those architectures (e.g. with flash attention), else the plain path.
    "tree" and "cache" are taken as asked. Wrappers (DDP, FSDP, DeepSpeed, accelerate,
    ``torch.compile``, PEFT) are seen through: the bare model's path is taken. A model dispatched by
    accelerate (``device_map``: over GPUs, with layers offloaded to the CPU or the disk) takes the
    same paths: its hooks move each layer's inputs (the tree's 4D mask, the position ids, the
    cache's rows) to the layer's device, and every path scores as the undispatched model does
    (``tests/offline/test_device_map.py``); the reason names the devices.
    """
    import transformers

    chain = wrapper_chain(model)
    inner = chain[-1]
    seen = " > ".join(type(m).__name__ for m in chain) + _dispatch_note(model)
    if requested == "off":
        return "off", "prefix_sharing='off'"
    prompt_learning = _prompt_learning_adapter(chain)
    if prompt_learning is not None:
        return "off", f"the {prompt_learning} adapter prepends virtual tokens, which shared prefixes cannot carry ({seen})"
    if requested in ("tree", "cache"):
        return requested, f"prefix_sharing={requested!r} ({seen})"
    config = getattr(inner, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in PREFIX_SHARING_MODEL_TYPES:
        return "off", f"model type {model_type!r} is not among the tested architectures ({seen})"
    accepts = forward_options(model)
    attention = getattr(config, "_attn_implementation", None)
    missing = [name for name in ("position_ids", "logits_to_keep") if not accepts[name]]
    if int(transformers.__version__.split(".")[0]) < 5:
        why = f"transformers {transformers.__version__} < 5 may rewrite a 4D mask"
    elif attention not in TREE_ATTENTION_IMPLEMENTATIONS:
        why = f"attention {attention!r} takes no 4D tree mask"
    elif missing:
        why = f"its forward does not take {' or '.join(missing)}"
    else:
        return "tree", f"{model_type} with {attention} attention ({seen})"
    if accepts["cache"] or accepts["past_key_values"]:
        return "cache", f"{why}; key/value cache instead ({seen})"
    return "off", f"{why}, and it takes no key/value cache ({seen})"


def tree_last_logits(model: torch.nn.Module, batch: TreeBatch, tensor_keep: bool = False) -> torch.Tensor:
    """Next-token logits [prompts, V] of prompts packed as token trees, in the order of ``batch.slots``.

    ``tensor_keep``: pass the slots' positions as a tensor (``forward_options(model)["logits_to_keep_tensor"]``).
    """
    mask = batch.attention_mask()
    if getattr(unwrap_model(model).config, "_attn_implementation", None) == "eager":
        # Eager attention adds the mask to the scores; sdpa takes the boolean one as it is.
        mask = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(
            ~mask, torch.finfo(torch.float32).min
        )
    slots = batch.slots.shape[1]
    keep = keep_positions(slots, batch.input_ids.shape[1], {"logits_to_keep_tensor": tensor_keep}, batch.input_ids.device)
    output = model(
        input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids, use_cache=False, logits_to_keep=keep
    )
    return output.logits[:, -slots:, :][batch.slots]


def last_token_logits(model: torch.nn.Module, batch: Batch, accepts: dict[str, bool]) -> torch.Tensor:
    """Logits at the last position of a left-padded batch, shape [B, V]."""
    kwargs: dict[str, Any] = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    if accepts["position_ids"]:
        kwargs["position_ids"] = batch.position_ids
    if accepts["logits_to_keep"]:
        kwargs["logits_to_keep"] = keep_positions(1, batch.input_ids.shape[1], accepts, batch.input_ids.device)
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
    keep = keep_positions(1, prefix.input_ids.shape[1], accepts, prefix.input_ids.device)
    output = model(
        input_ids=prefix.input_ids,
        attention_mask=prefix.attention_mask,
        position_ids=prefix.position_ids,
        use_cache=True,
        **({"logits_to_keep": keep} if accepts["logits_to_keep"] else {}),
    )
    cache = output.get("cache") if "cache" in output else output.get("past_key_values")
    cache.reorder_cache(batch.rows)  # one cache row per prompt (its sentence's prefix)
    suffix = batch.suffix
    mask = torch.cat([prefix.attention_mask[batch.rows], suffix.attention_mask], dim=1)
    kwargs = {
        "input_ids": suffix.input_ids,
        "attention_mask": mask,
        "position_ids": suffix.position_ids,
        cache_arg: cache,
        "use_cache": True,
    }
    if accepts["logits_to_keep"]:
        kwargs["logits_to_keep"] = keep_positions(1, suffix.input_ids.shape[1], accepts, suffix.input_ids.device)
    return model(**kwargs).logits[:, -1, :]


def score_logits(logits: torch.Tensor, answer_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks [B, K] and full-vocabulary log-probs [B, K] of the answer tokens ([K] or [B, K]); NaN rows where non-finite."""
    logits = logits.float()
    ranks = option_ranks(logits, answer_ids)
    logprobs = torch.log_softmax(logits, dim=-1).gather(
        1, answer_ids.expand(logits.shape[0], -1) if answer_ids.dim() == 1 else answer_ids
    )
    finite = torch.isfinite(logits).all(dim=-1)
    ranks = ranks.to(torch.float64)
    if not bool(finite.all()):
        ranks[~finite] = float("nan")
        logprobs[~finite] = float("nan")
    return ranks, logprobs


def iter_scores(
    model: torch.nn.Module, batches: Iterable[Batch | PrefixBatch | TreeBatch], answer_ids: Sequence[int] | torch.Tensor
) -> Iterator[tuple[Batch | PrefixBatch | TreeBatch, torch.Tensor, torch.Tensor]]:
    """Run ``batches`` (plain, prefix-cached or tree-packed) through ``model``; yield each with its ranks and
    log-probs (on CPU). ``answer_ids``: the K scored tokens, the same for every prompt ``[K]``, or
    each prompt's own ``[N, K]`` (rows by prompt index). Warns once at the end if any prompt gave
    non-finite logits (its row is NaN).
    """
    accepts = forward_options(model)
    device = model_device(model)
    model = forward_target(model)
    answers = torch.as_tensor(answer_ids, dtype=torch.long)
    per_prompt = answers.dim() == 2
    bad = 0
    for batch in batches:
        on_device = batch.to(device)
        if isinstance(on_device, TreeBatch):  # .to keeps the batch's type
            logits = tree_last_logits(model, on_device, accepts["logits_to_keep_tensor"])
        elif isinstance(on_device, PrefixBatch):
            logits = prefix_last_logits(model, on_device, accepts)
        else:
            logits = last_token_logits(model, on_device, accepts)
        # A dispatched model's hooks give the logits back on the input's device; a model may put them elsewhere.
        ranks, logprobs = score_logits(logits, (answers[batch.indices] if per_prompt else answers).to(logits.device))
        del logits
        bad += int(torch.isnan(ranks[:, 0]).sum())
        yield batch, ranks.cpu(), logprobs.cpu()
    if bad:
        warnings.warn(f"{bad} prompt(s) gave non-finite logits; their metrics are NaN", RuntimeWarning, stacklevel=2)


def _hook_device(module: torch.nn.Module) -> torch.device | None:
    """The execution device of accelerate's hook on ``module`` (``_hf_hook``: an ``AlignDevicesHook``, or a
    ``SequentialHook`` of hooks), else None."""
    hook = getattr(module, "_hf_hook", None)
    for each in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        device = getattr(each, "execution_device", None)
        if device is not None:
            return torch.device(device)  # an index is an accelerator's: torch.device(0) is cuda:0
    return None


def _hooked(model: torch.nn.Module) -> bool:
    """Whether accelerate hooked the model: ``dispatch_model`` (and ``cpu_offload`` / ``disk_offload``) always
    hook its top module, which a model that was not dispatched never has."""
    return any(hasattr(module, "_hf_hook") for module in wrapper_chain(model))


def dispatch_devices(model: torch.nn.Module) -> list[torch.device]:
    """The devices the layers of a model dispatched by accelerate run on (its hooks' execution
    devices: a layer offloaded to the CPU or the disk runs on the main device), in module order;
    empty for a model without accelerate's hooks (not dispatched, or on one device)."""
    devices: list[torch.device] = []
    if not _hooked(model):
        return devices
    for module in unwrap_model(model).modules():
        device = _hook_device(module)
        if device is not None and device not in devices:
            devices.append(device)
    return devices


def _dispatch_note(model: torch.nn.Module) -> str:
    """``", dispatched by accelerate: cpu, disk"`` for a model loaded with a device map that split it, else ``""``."""
    device_map = getattr(unwrap_model(model), "hf_device_map", None)
    devices = dispatch_devices(model)
    if not isinstance(device_map, dict) or not devices:
        return ""
    placed = ", ".join(dict.fromkeys(str(d) for d in device_map.values()))
    return f", dispatched by accelerate: {placed}" + ("; logits kept by an int slice" if len(devices) > 1 else "")


def dispatched_input_device(model: torch.nn.Module) -> torch.device | None:
    """Where a model dispatched by accelerate (``from_pretrained(device_map=...)``, ``dispatch_model``) runs
    its input embedding, else None.

    The execution device of the hook nearest the embedding: its own, else its closest hooked parent's
    (a module offloaded whole, ``{"": "disk"}``, has one hook at the top). Not the device of its
    parameters: an offloaded layer's are on ``meta`` and its hook loads them onto this device.
    """
    if not _hooked(model):
        return None
    chain = wrapper_chain(model)
    inner: Any = chain[-1]  # get_input_embeddings is a transformers model's (nn.Module types attributes as Tensor | Module)
    try:
        embed = inner.get_input_embeddings() if hasattr(inner, "get_input_embeddings") else None
    except (NotImplementedError, AttributeError):  # a model without one says so this way
        embed = None
    name = next((n for n, m in inner.named_modules() if m is embed), None) if isinstance(embed, torch.nn.Module) else None
    if name is not None:
        parts = name.split(".") if name else []
        for depth in range(len(parts), 0, -1):
            device = _hook_device(inner.get_submodule(".".join(parts[:depth])))
            if device is not None:
                return device
    for module in reversed(chain):  # the model's own hook (accelerate hooks the top of a dispatched model)
        device = _hook_device(module)
        if device is not None:
            return device
    return None


def model_device(model: torch.nn.Module) -> torch.device:
    """The device the probe puts its inputs on: where the model's first layer runs.

    For a model dispatched by accelerate over several devices or with offloaded layers
    (:func:`dispatched_input_device`) the execution device of its input embedding, whatever device
    its first parameter reports (``meta`` when offloaded); else the device of its first parameter.
    """
    device = dispatched_input_device(model)
    if device is not None:
        return device
    for param in model.parameters():
        return param.device
    return torch.device("cpu")
