"""The probe: sentences -> prompts -> tokens (once) -> model scores -> :class:`ProbeResult`."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import numpy as np
import torch

from ..data.sentence import ProbeSet, item_id  # item_id: re-exported (fairness_callback.probe)
from .distributed import gather_from_ranks, max_over_ranks, shard_indices, world
from .encoding import EncodedPrompts
from .faults import ProbeFailure, describe, is_out_of_memory, release_memory
from .growth import GapUnits
from .item_kinds import kind_of_items
from .keys import MetricKey
from .metrics import compute_metrics, jsd_parts, seed_metrics, split_subsets
from .prompts import DEFAULT_SEEDS, PromptConfig, PromptSet
from .scoring import OptionScores, choose_path, iter_scores, model_device, unwrap_model
from .tasks import GENDER_TASK, ProbeTask

__all__ = [
    "FairnessProbe",
    "fixed_subset",
    "Normalize",
    "PREFIX_SHARING",
    "preserved_state",
    "restored_state",
    "ProbeResult",
]

log = logging.getLogger("fairness_callback")

Normalize = Literal["vocab", "options"]


class ProbeResult:
    """The outcome of one probe run.

    Attributes:
        metrics: flat ``dict[str, float]``: ``ar/<group>``, ``jsdp/<group>``, ``jsdp/<group>/<option>``,
            ``acc/<group>``, ``n/<group>``, ``ar/gap`` and ``jsdp/gap`` (female - male),
            ``mwu_p/{ar,jsdp}`` and ``mwu_rbc/{ar,jsdp}`` (rank-biserial effect size), ``jsdp/lean``
            (on "not specified" prompts, the part on "male" minus the part on "female"), and the
            same under ``pro/`` and ``anti/`` when the sentences carry a stereotype label.
        records: one dict per prompt (``prompt``, ``sentence_id``, ``occupation``, ``role``, ``group``,
            ``seed``, ``stereotype``, ``order``, ``rank``, ``option_ranks``, ``option_probs``, ``parts``).
        info: how the probe was configured and what it cost (``seconds``, ``num_prompts``, ...).
        by_seed: ``ar/<group>``, ``jsdp/<group>``, ``ar/gap``, ``jsdp/gap`` as one value per
            option-order seed, in seed order (the spread across seeds gives confidence bands).
    """

    def __init__(
        self, metrics: dict[str, float], records: list[dict], info: dict[str, Any], by_seed: dict[str, list[float]] | None = None
    ) -> None:
        self.metrics = metrics
        self.records = records
        self.info = info
        self.by_seed = by_seed or {}

    def to_json(self) -> str:
        return json.dumps({"metrics": self.metrics, "info": self.info, "by_seed": self.by_seed, "records": self.records})

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        data = json.loads(text)
        return cls(data["metrics"], data["records"], data["info"], data.get("by_seed"))

    def table(self) -> str:
        """The headline metrics as a plain-text table."""
        m = self.metrics
        groups = tuple(self.info.get("groups", GENDER_TASK.groups))
        minuend, subtrahend = self.info.get("gap", GENDER_TASK.gap)
        width = max(14, *(len(g) + 1 for g in groups))
        lines = [f"{'answer group':<{width}} {'n':>6} {'AR':>10} {'JSD-P':>8} {'acc':>6}"]
        for g in groups:
            lines.append(f"{g:<{width}} {m[f'n/{g}']:>6.0f} {m[f'ar/{g}']:>10.1f} {m[f'jsdp/{g}']:>8.4f} {m[f'acc/{g}']:>6.3f}")
        gap = "gap (f - m)" if (minuend, subtrahend) == ("female", "male") else f"gap ({minuend[:4]} - {subtrahend[:4]})"
        lines.append(f"{gap:<{width}} {'':>6} {m['ar/gap']:>+10.1f} {m['jsdp/gap']:>+8.4f}")
        lines.append(
            f"Mann-Whitney {minuend} vs {subtrahend}: AR p={m['mwu_p/ar']:.3g} (r={m['mwu_rbc/ar']:+.3f}), "
            f"JSD-P p={m['mwu_p/jsdp']:.3g} (r={m['mwu_rbc/jsdp']:+.3f})"
        )
        neutral = self.info.get("neutral")
        if neutral and m.get("jsdp/lean") is not None:
            lines.append(f"lean on {neutral} prompts (JSD-P part on {subtrahend} - on {minuend}): {m['jsdp/lean']:+.4f}")
        lines.append("JSD-P parts (row: correct answer, column: option)")
        lines.append(f"{'':<{width}} " + " ".join(f"{o:>13}" for o in groups))
        for g in groups:
            lines.append(f"{g:<{width}} " + " ".join(f"{m[f'jsdp/{g}/{o}']:>13.4f}" for o in groups))
        return "\n".join(lines)


@contextmanager
def restored_state(model: torch.nn.Module) -> Iterator[None]:
    """Restore, on leaving, every module's training flag of ``model`` and the random states of
    ``random``, NumPy and torch (CPU and, where initialised, CUDA), whatever ran inside."""
    modes = [(module, module.training) for module in model.modules()]
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


@contextmanager
def preserved_state(model: torch.nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode without autograd; restore every module's mode and all RNG states after.

    Eval mode switches dropout off, so no RNG is drawn; the states are restored anyway so that
    a model with stochastic layers of its own cannot shift the training run's random stream.
    """
    with restored_state(model):
        model.eval()
        with torch.no_grad():
            yield


def fixed_subset(probe_set: ProbeSet, max_prompts: int, prompts_per_sentence: int) -> ProbeSet:
    """Whole sentences in SHA-256 order of their ids, as many as fit in ``max_prompts`` prompts."""
    count = max_prompts // prompts_per_sentence
    if count < 1:
        raise ValueError(f"max_prompts={max_prompts} is less than one sentence's {prompts_per_sentence} prompts")
    order = sorted(probe_set, key=lambda s: hashlib.sha256(item_id(s).encode()).hexdigest())
    return ProbeSet(order[:count], name=f"{probe_set.name}[{min(count, len(probe_set))} of {len(probe_set)}]")


#: Values of ``FairnessProbe(prefix_sharing=...)``.
PREFIX_SHARING = ("auto", "tree", "cache", "off")


class FairnessProbe:
    """Measures a causal LM's bias on multiple-choice prompts, on the model as it is in memory.

    The paper's gender probe (WinoBias-style sentences; Winogender's "they" beside he / she), BBQ's
    social axes, or any task given as data: the same metrics (Average Rank, JSD-P by parts,
    accuracy, Mann-Whitney) per correct-answer group of the task, and its gap.

    Args:
        tokenizer: the model's Hugging Face tokenizer, or a path / hub id to load one from. It is
            only read (its padding side and pad token are left as they are).
        probe_set: what to probe: a :class:`ProbeSet` of gender sentences (WinoBias, Winogender,
            the built-in sets), of BBQ items or of items of a registered kind of one's own (their kind
            builds their prompts: :mod:`~fairness_callback.probe.item_kinds`), or a
            :class:`~fairness_callback.probe.prompts.PromptSet` (a task of your own, as data); default
            :meth:`ProbeSet.default` (official WinoBias Type 2 if ``winobias_dir`` or
            ``$FAIRNESS_WINOBIAS_DIR`` is given, else the built-in set).
        template: the prompt template (see :class:`~fairness_callback.probe.prompts.PromptConfig`);
            None: the item kind's default (gender: ``DEFAULT_TEMPLATE``, BBQ: ``DEFAULT_BBQ_TEMPLATE``).
        options: gender: text shown for each answer group, keyed by ``male``, ``female``, ``not_specified``
            (a kind that takes none, such as BBQ's, refuses them).
        seeds: option-order seeds (default 0-4).
        batch_size: prompts per forward call (with shared prefixes: whole sentences, up to this many
            prompts; at least one sentence).
        normalize: ``"vocab"``: an option's probability is its first token's full-vocabulary
            softmax probability; ``"options"``: the K option probabilities renormalised to sum to 1.
        log_base: logarithm base of JSD-P (2 puts each part in [0, 0.5]).
        winobias_dir: directory of the official WinoBias files, used when ``probe_set`` is None.
        prefix_sharing: how the prompts of a sentence share their common prefixes.
            ``"tree"``: each sentence's prompts packed into one row as a token tree (the sentence
            and each option list once) with a tree attention mask, one forward call, no cache;
            ``"cache"``: each sentence run once, then every prompt's suffix against its
            key/value cache; ``"off"``: every prompt whole. ``"auto"`` (default) takes ``"tree"``
            where it is known to be exact (``scoring.choose_path``: GPT-NeoX, GPT-2,
            Llama-style models with sdpa or eager attention under transformers >= 5), else
            ``"cache"`` for those architectures (e.g. with flash attention), else ``"off"``,
            seeing through DDP, FSDP, DeepSpeed, accelerate, ``torch.compile`` and PEFT
            wrappers; the path and why are logged once. All give the same numbers within
            float rounding.
        max_prompts: probe a fixed subset of whole sentences with at most this many prompts: the
            same sentences on every rank and at every probe (chosen by a hash of their ids), so
            the curve is consistent; ``<metric>/se`` keys give each mean's standard error.

    Prompts are tokenised once, here; :meth:`run` only runs the model.
    """

    def __init__(
        self,
        tokenizer,
        probe_set: ProbeSet | PromptSet | None = None,
        template: str | None = None,
        options: Mapping[str, str] | None = None,
        seeds: Sequence[int] = DEFAULT_SEEDS,
        batch_size: int = 64,
        normalize: Normalize = "vocab",
        log_base: float = 2.0,
        winobias_dir: str | os.PathLike | None = None,
        prefix_sharing: Literal["auto", "tree", "cache", "off"] = "auto",
        max_prompts: int | None = None,
    ) -> None:
        if normalize not in ("vocab", "options"):
            raise ValueError(f"normalize must be 'vocab' or 'options', got {normalize!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if prefix_sharing not in PREFIX_SHARING:
            raise ValueError(f"prefix_sharing must be one of {PREFIX_SHARING}, got {prefix_sharing!r}")
        if not log_base > 0 or log_base == 1:
            raise ValueError(f"log_base must be positive and not 1, got {log_base}")
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        probe_set = probe_set if probe_set is not None else ProbeSet.default(winobias_dir)
        self.batch_size = batch_size
        self.prefix_sharing = prefix_sharing
        self.normalize = normalize
        self.log_base = log_base
        self.seeds = tuple(int(seed) for seed in seeds)
        self.probe_set: ProbeSet | PromptSet
        self.prompt_set: PromptSet
        self.config: PromptConfig | None
        if isinstance(probe_set, PromptSet):
            if max_prompts:
                raise ValueError("max_prompts needs a ProbeSet (whole items are chosen); a PromptSet is scored whole")
            self.config = None
            self.full_size = len({p.sentence_id for p in probe_set.prompts})
            self.probe_set, self.prompt_set = probe_set, probe_set
        else:
            kind = kind_of_items(probe_set)  # the items' kind builds their prompts (probe/item_kinds.py)
            kind.check_options(options)
            if not self.seeds:
                raise ValueError("seeds must name at least one option-order seed")
            self.full_size = len(probe_set)
            items = fixed_subset(probe_set, max_prompts, kind.prompts_per_item(self.seeds)) if max_prompts else probe_set
            self.probe_set = items
            self.config, prompts = kind.build_prompts(items, template or kind.default_template, options, self.seeds)
            self.prompt_set = PromptSet(kind.task, tuple(prompts), getattr(items, "name", kind.name))
        self.task: ProbeTask = self.prompt_set.task
        self.prompts = list(self.prompt_set.prompts)
        self.encoded = EncodedPrompts(tokenizer, self.prompts, self.task.groups)
        self._sentence_index = torch.tensor([p.sentence_index for p in self.prompts])
        self._seeds = torch.tensor([p.seed for p in self.prompts])
        self._labels = [p.labels for p in self.prompts]
        self._main, self._subsets = split_subsets(self._labels, self.task)
        self._said_path: tuple[str, str] | None = None
        #: Prompts per forward call after an out-of-memory back-off (None: ``batch_size``, rows unlimited).
        self.batch_limit: int | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def answer_tokens(self):
        return self.encoded.answers

    @functools.cached_property
    def fairness_key(self) -> str:
        """The key that stands for this probe beside others (stop lines, sudden changes, axes
        figures): ``jsdp/gap``, or ``jsdp/lean`` when no top-level prompt answers either group of
        the gap (a set of only singular-"they" sentences: no gap, only where its mass leans)."""
        gap_columns = torch.tensor([self.task.groups.index(g) for g in self.task.gap])
        answers_gap = torch.isin(self.encoded.correct[self._main], gap_columns).any()
        return "jsdp/gap" if bool(answers_gap) or self.task.neutral is None else "jsdp/lean"

    @functools.cached_property
    def metric_keys(self) -> frozenset[str]:
        """Every key of :meth:`run`'s metrics, known from the task and the prompts before any model
        runs (the metrics of placeholder scores: which keys exist never depends on the scores)."""
        n, k = len(self.prompts), len(self.task.groups)
        ranks = torch.arange(1, k + 1, dtype=torch.float64).repeat(n, 1)
        logprobs = torch.full((n, k), -math.log(k + 1), dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # placeholder scores are all ties
            return frozenset(self._metrics(OptionScores(ranks, logprobs))[0])

    def check_model(self, model: torch.nn.Module) -> None:
        """Raise ValueError if a token id this probe feeds or scores is not in ``model``'s vocabulary.

        Out of range, an embedding lookup raises ``IndexError`` on the CPU and a device-side assert
        on CUDA, which poisons the process; checked once, before training, instead. Sizes come from
        the input and output embeddings (through DDP, FSDP, DeepSpeed and PEFT), else ``config.vocab_size``.
        """
        inner = unwrap_model(model)
        config_size = getattr(getattr(inner, "config", None), "vocab_size", None)
        for kind, getter, largest in (
            ("scores", "get_output_embeddings", int(self.encoded.answer_ids.max())),
            ("feeds", "get_input_embeddings", self.encoded.max_token_id),
        ):
            module = getattr(inner, getter, lambda: None)()
            weight = getattr(module, "weight", None)
            dims: Any = getattr(weight, "ds_shape", None) or getattr(weight, "shape", ())
            shape = tuple(dims)
            size = shape[0] if len(shape) == 2 and shape[0] > 0 else config_size
            if isinstance(size, int) and largest >= size:
                where = "output" if kind == "scores" else "input"
                raise ValueError(
                    f"the probe {kind} token id {largest}, but the model's {where} vocabulary has {size} tokens: "
                    f"the tokenizer ({self.encoded.vocab_size} tokens) does not belong to this model"
                )

    def gap_units(self, result: ProbeResult, key: str) -> GapUnits | None:
        """The per-sentence sums and counts of gap ``key`` (``jsdp/gap``, ``ar/abs_gap``, ``pro/jsdp/gap``)
        in ``result`` (a result of this probe), for the paired bootstrap of
        :mod:`fairness_callback.probe.growth`; None for a key that is not such a gap."""
        parsed = MetricKey.try_parse(key)
        if parsed is None or not parsed.is_gap or len(parsed.scope) > 1:
            return None
        mask = self._subsets.get(parsed.scope[0]) if parsed.scope else self._main
        if mask is None or len(result.records) != len(self.prompts):
            return None
        if parsed.kind == "ar":
            values = np.array([record["rank"] for record in result.records], dtype=float)
        else:
            values = np.array([record["parts"][record["group"]] for record in result.records], dtype=float)
        rows = mask.numpy()
        columns = (self.task.groups.index(self.task.gap[0]), self.task.groups.index(self.task.gap[1]))
        return GapUnits.from_values(
            values[rows],
            self.encoded.correct.numpy()[rows],
            self._sentence_index.numpy()[rows],
            columns,
            int(self._sentence_index.max()) + 1,
        )

    def score(self, model: torch.nn.Module, indices: Sequence[int] | None = None, distributed: bool = False) -> OptionScores:
        """Raw per-prompt scores for ``indices`` (default all); rows not scored are NaN.

        With ``distributed=True`` (call it on every rank) each rank scores an equal shard and one
        all-reduce gives every rank all the scores. Every call makes the same collectives on every
        rank, whatever fails: first one small all-reduce that says whether any rank failed or ran
        out of memory, then the scores' all-reduce only if none failed. A failure anywhere raises
        :class:`~fairness_callback.probe.faults.ProbeFailure` on every rank, naming the ranks and why.

        Out of memory: the batch is halved (prompts per forward call and, on the token-tree path,
        prompts per row; on every rank alike) and the probe retried, down to one prompt; the size
        that worked is kept for later probes (:attr:`batch_limit`). Only an out-of-memory at one
        prompt fails the probe.
        """
        rank, world_size = world() if distributed else (0, 1)
        chosen = torch.arange(len(self.prompts)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        state: Any  # the score state (ProbeScoreState) once this rank has scored, else None
        while True:
            state, sharing, error, attempt = None, "off", None, [0]
            try:
                sharing, state = self._score_shard(model, chosen, indices is None, rank, world_size, attempt)
            except Exception as exc:  # every rank must reach the agreement below
                if world_size == 1 and not is_out_of_memory(exc):
                    raise
                error = exc
            # An out-of-memory in a batch is retried smaller; anything else fails the probe.
            backoff = attempt[0] if error is not None and is_out_of_memory(error) else 0
            flags = [int(error is not None and not backoff), backoff]
            failed, size = max_over_ranks(flags) if world_size > 1 else flags  # size: the largest batch that ran out
            if failed or size == 1:
                if world_size == 1:
                    raise error  # type: ignore[misc]
                reasons = gather_from_ranks(describe(error) if error is not None else None)
                raise ProbeFailure({r: text for r, text in enumerate(reasons) if text is not None}) from error
            if size:
                reason = describe(error) if error is not None else "another rank ran out of memory"
                state = error = None  # drop the failed forward's tensors (the traceback holds them) before releasing
                release_memory(model_device(model))
                self.batch_limit = size // 2
                log.warning(
                    "fairness probe ran out of memory at %d prompts per forward call (%s); retrying at %d, kept for later probes",
                    size,
                    reason,
                    self.batch_limit,
                )
                continue
            ranks, logprobs = state.compute()  # the all-reduce of the scores
            return OptionScores(ranks, logprobs, sharing)

    def _score_shard(
        self, model: torch.nn.Module, chosen: torch.Tensor, whole: bool, rank: int, world_size: int, attempt: list[int]
    ) -> tuple[str, Any]:
        """Score this rank's shard of ``chosen`` into a fresh score state (not yet synced);
        ``attempt[0]`` is left at the number of prompts of the batch scored last (or being scored)."""
        from .score_state import ProbeScoreState  # torchmetrics, imported when first scoring

        # Shared prefixes need whole sentences on a rank; a distributed subset is scored plainly.
        sharing = self._path(model)[0] if world_size == 1 or whole else "off"
        mine, real = self._shard(chosen, rank, world_size, by_sentence=sharing != "off")
        size = self.batch_limit or self.batch_size
        per_row = self.batch_limit  # None: rows as large as the packing allows
        batches: Iterable[Any]
        if sharing == "tree":
            batches = self.encoded.tree_batches(size, mine, per_row=per_row)
        elif sharing == "cache":
            batches = self.encoded.prefix_batches(size, mine, per_row=per_row)
        else:
            batches = self.encoded.batches(size, mine)
        state = ProbeScoreState(len(self.prompts), len(self.task.groups), distributed=world_size > 1).to(model_device(model))
        with preserved_state(model):
            for batch, ranks, logprobs in iter_scores(model, self._counted(batches, attempt), self.encoded.answer_ids):
                keep = batch.positions < real
                state.update(batch.indices[keep], ranks[keep], logprobs[keep])
        return sharing, state

    @staticmethod
    def _counted(batches: Iterable[Any], attempt: list[int]) -> Iterator[Any]:
        for batch in batches:
            attempt[0] = len(batch.indices)
            yield batch

    def prefix_sharing_for(self, model: torch.nn.Module) -> Literal["tree", "cache", "off"]:
        """How :meth:`score` shares prompt prefixes for this model (see ``prefix_sharing``)."""
        return cast('Literal["tree", "cache", "off"]', self._path(model)[0])  # choose_path's paths

    def _path(self, model: torch.nn.Module) -> tuple[str, str]:
        """``scoring.choose_path`` for this probe's prompts; logged once per path and reason."""
        if not self.encoded.prefix_usable:
            path, reason = "off", "the prompts of a sentence share no prefix"
        else:
            path, reason = choose_path(model, self.prefix_sharing)
        if (path, reason) != self._said_path:
            self._said_path = (path, reason)
            fell_back = self.prefix_sharing == "auto" and path != "tree"
            log.log(
                logging.WARNING if fell_back else logging.INFO,
                "fairness probe scores on the %s path: %s",
                {"off": "plain"}.get(path, path),
                reason,
            )
        return path, reason

    def _shard(self, chosen: torch.Tensor, rank: int, world_size: int, by_sentence: bool) -> tuple[torch.Tensor, int]:
        """This rank's prompts (real ones first, then padding) and how many are real.

        By sentence for the prefix path: whole sentences, the same number on every rank, so every
        rank makes the same number of forward calls (all sentences have equally many prompts).
        """
        if not by_sentence:
            shard, real = shard_indices(self.encoded.lengths[chosen], rank, world_size)
            return chosen[shard], real
        sentences = sorted({int(self.encoded.sentence_of[i]) for i in chosen})
        members: dict[int, list[int]] = {s: [] for s in sentences}
        for i in chosen.tolist():
            members[int(self.encoded.sentence_of[i])].append(i)
        lengths = torch.tensor([int(self.encoded.lengths[members[s][0]]) for s in sentences])
        shard, real_sentences = shard_indices(lengths, rank, world_size)
        picked = [members[sentences[k]] for k in shard.tolist()]
        real = sum(len(m) for m in picked[:real_sentences])
        return torch.tensor([i for m in picked for i in m], dtype=torch.long), real

    def run(self, model: torch.nn.Module, distributed: bool = False) -> ProbeResult:
        """Score every prompt with ``model`` and compute the metrics.

        The model's train/eval modes, the RNG states and the tokenizer are left as they were;
        no autograd graph is built. With ``distributed=True`` it must be called on every rank of
        the default process group; every rank returns the same result.
        """
        start = time.perf_counter()
        scores = self.score(model, distributed=distributed)
        return self.result(scores, seconds=time.perf_counter() - start)

    def option_probs(self, logprobs: torch.Tensor) -> torch.Tensor:
        """Option probabilities [N, K] in float64, normalised as configured."""
        logprobs = logprobs.double()
        if self.normalize == "options":
            return torch.softmax(logprobs, dim=1)
        return logprobs.exp()

    def result(self, scores: OptionScores, seconds: float = float("nan")) -> ProbeResult:
        """Turn per-prompt scores into a :class:`ProbeResult`."""
        metrics, probs, parts, correct_ranks = self._metrics(scores)
        correct, main = self.encoded.correct, self._main
        by_seed = seed_metrics(correct[main], correct_ranks[main], parts[main], self._seeds[main], self.task)
        info = {**self._info(seconds), "prefix_sharing": scores.prefix_sharing}
        return ProbeResult(metrics, self._records(scores.ranks, probs, parts), info, by_seed)

    def _metrics(self, scores: OptionScores) -> tuple[dict[str, float], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The metrics of ``scores``, with the option probabilities, JSD parts and correct answers' ranks."""
        correct = self.encoded.correct
        probs = self.option_probs(scores.logprobs)
        parts = jsd_parts(probs, correct, self.log_base)
        correct_ranks = scores.ranks.gather(1, correct.view(-1, 1)).squeeze(1)
        metrics = compute_metrics(
            correct, correct_ranks, probs, parts, self._labels, sentence_index=self._sentence_index, task=self.task
        )
        return metrics, probs, parts, correct_ranks

    def _records(self, ranks: torch.Tensor, probs: torch.Tensor, parts: torch.Tensor) -> list[dict]:
        groups = self.task.groups
        ranks_l, probs_l, parts_l = ranks.tolist(), probs.tolist(), parts.tolist()
        answer_ids = self.encoded.answer_ids.tolist()
        records = []
        for p in self.prompts:
            i = p.index
            records.append(
                {
                    "prompt": p.text,
                    "sentence_id": p.sentence_id,
                    **p.labels,
                    "group": p.group,
                    "correct": p.group,
                    "seed": p.seed,
                    "order": list(p.order),
                    "options": {g: {"text": text, "token_id": token} for g, text, token in zip(groups, p.options, answer_ids[i])},
                    "rank": ranks_l[i][p.correct],
                    "option_ranks": dict(zip(groups, ranks_l[i])),
                    "option_probs": dict(zip(groups, probs_l[i])),
                    "parts": dict(zip(groups, parts_l[i])),
                }
            )
        return records

    def _info(self, seconds: float) -> dict[str, Any]:
        answers = self.encoded.answers
        return {
            "probe_set": self.prompt_set.name,
            "num_sentences": int(self._sentence_index.max()) + 1,
            "num_sentences_available": self.full_size,
            "num_prompts": len(self.prompts),
            "num_tokens": self.encoded.num_tokens,
            "task": self.task.name,
            "groups": list(self.task.groups),
            "gap": list(self.task.gap),
            "neutral": self.task.neutral,
            "seeds": list(self.seeds),
            "template": self.config.template if self.config else None,
            "options": dict(self.config.options) if self.config else None,
            "answer_token_ids": dict(zip(self.task.groups, answers.ids)),
            "answer_tokens": {g: list(v) for g, v in answers.pieces.items()},
            "multi_token_options": list(answers.multi_token),
            "normalize": self.normalize,
            "log_base": self.log_base,
            "seconds": seconds,
        }
