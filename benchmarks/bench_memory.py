"""Peak memory of a probe over the model's own footprint, against batch size and vocabulary size (CPU).

Each configuration (batch size B x vocabulary size V x prefix sharing: off, tree, cache) runs in a fresh
subprocess: a Pythia-70m-shaped GPT-NeoX (hidden 512, 6 layers, random weights) with vocabulary V,
and a byte-level BPE tokenizer trained on the built-in probe prompts and their answers (8,000
tokens at most, so the same token ids and prompt lengths serve every V). The probe scores the
built-in set's longest sentences, as many as fill one batch of B (at least one sentence): the
probe's most expensive batch, where its peak is.

What is measured: the process's resident set (RSS, Linux ``/proc/self/status``); CPU torch keeps
no allocator counters and ``tracemalloc`` does not see torch. After one warm-up ``probe.score``,
the RSS high-water mark is reset (``/proc/self/clear_refs``), the same call runs again, and
``peak = VmHWM - VmRSS before it``: the extra memory the probe needs on top of what is resident
(model, encoded prompts, libraries). ``MALLOC_MMAP_THRESHOLD_`` is fixed at 64 KiB in the
subprocess, so freed tensors go back to the system and the warm-up's memory cannot hide the
measured call's. The model footprint is its parameters' and buffers' bytes.

Next to it, two analytic terms that grow with B and V, as the floor the measurement is read against:
the scoring tail, ``(4 + K) B V`` bytes (float32 last-position logits and the K = 3 boolean
"logit above the option's" comparisons that give the ranks), and the widest forward activation, the
MLP's ``B L 4H`` float32 input and output, ``2 x 16 B L H`` bytes (L tokens of the longest prompt).
The forward's activations are freed before the tail runs, so the peak is about the larger of the two.
For the tree path L is a packed row (a sentence's trie) and B the number of rows; the cache path
also holds every layer's keys and values for every prompt.

    python benchmarks/bench_memory.py [--batch-sizes 16 64 256] [--vocab-sizes 8192 50304]

The last line printed is one JSON object: per configuration, the figures and ``peak_over_model``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HIDDEN = 512


def status_kib() -> dict[str, int]:
    text = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) for key in ("VmRSS", "VmHWM")}


SHARING = ("off", "tree", "cache")


def measure(batch_size: int, vocab_size: int, sharing: str) -> dict:
    """In this (fresh) process: the probe's extra peak RSS over the resident model, in bytes."""
    import torch

    from fairness_callback import FairnessProbe, ProbeSet
    from fairness_callback.demo.tiny_model import tiny_gpt_neox, train_bpe_tokenizer
    from fairness_callback.probe.prompts import PromptConfig, build_prompts

    config = PromptConfig()
    answered = [f"{p.text} {option}" for p in build_prompts(ProbeSet.builtin(), config) for option in config.options.values()]
    tokenizer = train_bpe_tokenizer(answered, vocab_size=8000)
    model = tiny_gpt_neox(vocab_size, hidden_size=HIDDEN, num_layers=6, num_heads=8, max_position_embeddings=2048).eval()
    probe = FairnessProbe(tokenizer, ProbeSet.builtin(), batch_size=batch_size, prefix_sharing=sharing)
    assert probe.prefix_sharing_for(model) == sharing
    model_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    # The longest sentences, enough of them to fill one batch: the probe's most expensive batch.
    per_sentence = 2 * len(probe.config.seeds)
    longest = torch.argsort(probe.encoded.lengths, descending=True, stable=True)
    sentences = list(dict.fromkeys(int(probe.encoded.sentence_of[i]) for i in longest))[: -(-batch_size // per_sentence)]
    indices = [i for i in range(len(probe)) if int(probe.encoded.sentence_of[i]) in sentences]
    probe.score(model, indices)  # warm-up
    before = status_kib()["VmRSS"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    probe.score(model, indices)
    peak = (status_kib()["VmHWM"] - before) * 1024
    if sharing == "tree":  # the forward runs packed rows: one per sentence, a sentence's trie wide
        rows, tokens = probe.encoded.tree_batches(batch_size, indices)[0].input_ids.shape
    else:
        rows, tokens = len(indices), int(probe.encoded.lengths[indices].max())
    return {
        "batch_size": batch_size,
        "vocab_size": vocab_size,
        "sharing": sharing,
        "prompts": len(indices),
        "tokens": tokens,
        "model_mb": round(model_bytes / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "peak_over_model": round(peak / model_bytes, 3),
        "tail_terms_mb": round((4 + len(probe.answer_tokens.ids)) * batch_size * vocab_size / 2**20, 1),
        "rows": rows,
        "activation_terms_mb": round(2 * 16 * rows * tokens * HIDDEN / 2**20, 1),
        "threads": torch.get_num_threads(),
    }


def run_child(batch_size: int, vocab_size: int, sharing: str) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    command = [sys.executable, __file__, "--child", str(batch_size), str(vocab_size), "--sharing", sharing]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[8192, 50304])
    parser.add_argument("--child", type=int, nargs=2, metavar=("BATCH", "VOCAB"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--sharing",
        choices=SHARING,
        nargs="+",
        default=list(SHARING),
        help="prefix sharing modes to measure (FairnessProbe(prefix_sharing=...))",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.sharing[0])))
        return

    load_before = load_average()
    print(f"load average before (1, 5, 15 min): {load_before}")
    print(
        "measured: extra peak RSS of the second probe.score on the longest sentences over the RSS before it, "
        "a fresh process per row; analytic: 7 B V (logits, rank comparisons), 32 B L H (MLP activations)"
    )
    print(
        f"{'path':<7} {'batch':>5} {'vocab':>6} {'L':>4} {'model MB':>9} {'peak MB':>8} {'peak/model':>10} "
        f"{'tail MB':>9} {'activ. MB':>9}"
    )
    rows = []
    for vocab_size in args.vocab_sizes:
        for batch_size in args.batch_sizes:
            for sharing in args.sharing:
                row = run_child(batch_size, vocab_size, sharing)
                rows.append(row)
                print(
                    f"{sharing:<7} {batch_size:>5} {vocab_size:>6} "
                    f"{row['tokens']:>4} {row['model_mb']:>9} {row['peak_mb']:>8} "
                    f"{row['peak_over_model']:>10} {row['tail_terms_mb']:>9} {row['activation_terms_mb']:>9}"
                )
    load_after = load_average()
    print(f"load average after (1, 5, 15 min): {load_after}")
    print(json.dumps({"configs": rows, "load_before": load_before, "load_after": load_after}))


if __name__ == "__main__":
    main()
