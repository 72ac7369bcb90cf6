"""Load a saved Hugging Face causal LM and its tokenizer for the probe (local directory or hub id)."""

from __future__ import annotations

from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(name: str | None, device: str | torch.device = "cpu") -> torch.dtype | None:
    """``"bf16"`` -> ``torch.bfloat16`` etc.; ``"auto"`` (or None) means bfloat16 on CUDA and the
    checkpoint's own dtype elsewhere (None)."""
    if name is None or name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else None
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of auto, {', '.join(sorted(DTYPES))}") from None


def looks_like_local_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists() or name.count("/") > 1


def load_model_and_tokenizer(
    name_or_path: str,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
):
    """``(model, tokenizer)`` from a ``save_pretrained`` directory, or a hub id (with ``revision``) when online.

    Weights load through ``from_pretrained``, which prefers safetensors and otherwise uses
    ``torch.load(weights_only=True)``; code from the hub runs only with ``trust_remote_code=True``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str) or dtype is None:
        dtype = parse_dtype(dtype, device)
    if looks_like_local_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model directory {str(path)!r} does not exist")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} has no config.json: not a save_pretrained model directory")
        name_or_path = str(path)
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype or "auto", **kwargs)
    return model.to(device).eval(), tokenizer
