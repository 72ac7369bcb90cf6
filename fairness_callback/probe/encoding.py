"""Tokenise prompts once, find the answer tokens, and cut length-sorted left-padded batches.

The tokenizer is only read: nothing here changes its padding side, pad token or any other
setting, so a tokenizer shared with the training loop is safe to pass in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from .packing import MAX_PROMPTS_PER_TREE, TreeBatch, build_tree, pack_trees
from .prompts import Prompt

__all__ = [
    "AnswerTokenError",
    "AnswerTokens",
    "Batch",
    "EncodedPrompts",
    "find_answer_tokens",
    "first_tokens",
    "PrefixBatch",
]


class AnswerTokenError(ValueError):
    """The answer options do not give K distinct, non-empty first tokens."""


@dataclass(frozen=True)
class AnswerTokens:
    """The scored token of each answer group and how each option tokenised after the prompt.

    ``ids`` and ``pieces`` are those of the first prompt's options, in group order and by group
    (the same for every prompt of the gender task); ``by_text`` maps every option text of the
    prompts to its scored token id.
    """

    ids: tuple[int, ...]
    pieces: Mapping[str, tuple[str, ...]]
    by_text: Mapping[str, int] = None  # type: ignore[assignment]

    @property
    def multi_token(self) -> tuple[str, ...]:
        """Groups whose option text is more than one token (only its first token is scored)."""
        return tuple(group for group, pieces in self.pieces.items() if len(pieces) > 1)


def _special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts before any text by default (e.g. BOS); usually none for GPT-style models."""
    plain = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start])
    return []


def first_tokens(tokenizer, prompt_text: str, texts: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """The token ids of each option text *as it follows* ``prompt_text`` (with its leading space).

    Tokenising the option in context handles tokenizers that mark word starts (GPT-2's ``Ġ``,
    SentencePiece's ``▁``) the same way they do inside the prompt.
    """
    base = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    out = {}
    for text in texts:
        full = tokenizer(f"{prompt_text} {text}", add_special_tokens=False)["input_ids"]
        if full[: len(base)] != base:
            raise AnswerTokenError(
                f"option {text!r} changes how the prompt tokenises (it merges with the prompt's last token); "
                f"the prompt must end where the option's first token begins. Prompt: {prompt_text!r}"
            )
        out[text] = tuple(full[len(base) :])
    return out


def find_answer_tokens(tokenizer, prompt_text: str, options: Mapping[str, str]) -> AnswerTokens:
    """First token of each group's option *as it follows* ``prompt_text``; K distinct, non-blank tokens."""
    tails = first_tokens(tokenizer, prompt_text, list(dict.fromkeys(options.values())))
    pieces = {group: tuple(tokenizer.convert_ids_to_tokens(list(tails[label]))) for group, label in options.items()}
    ids = [tails[label][0] if tails[label] else None for label in options.values()]
    shown = ", ".join(f"{options[g]!r} -> {list(pieces[g])}" for g in options)
    empty = [g for g, i in zip(options, ids) if i is None or not tokenizer.decode([i]).strip()]
    if empty:
        raise AnswerTokenError(f"options {empty} have an empty or blank first token after the prompt: {shown}")
    found = [i for i in ids if i is not None]  # all of them: a None is in `empty`
    if len(set(found)) != len(found):
        raise AnswerTokenError(f"the options' first tokens are not distinct: {shown}")
    return AnswerTokens(ids=tuple(found), pieces=pieces, by_text={options[g]: i for g, i in zip(options, found)})


@dataclass
class Batch:
    """Left-padded model inputs for some prompts.

    ``indices`` are the prompts' indices in the full prompt list; ``positions`` are their
    positions in the index list the batch was cut from.
    """

    indices: torch.Tensor
    positions: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.indices,
            self.positions,
            self.input_ids.to(device, non_blocking=True),
            self.attention_mask.to(device, non_blocking=True),
            self.position_ids.to(device, non_blocking=True),
        )


@dataclass
class PrefixBatch:
    """Prompts that share per-sentence prefixes: the prefixes once, then every prompt's suffix.

    ``prefix`` has one row per sentence, ``suffix`` one per prompt (``indices``, ``positions``
    as in :class:`Batch`); ``rows[j]`` is the prefix row of prompt ``j``. Both are left-padded;
    the suffix position ids continue from the prompt's own prefix.
    """

    prefix: Batch
    suffix: Batch
    rows: torch.Tensor

    @property
    def indices(self) -> torch.Tensor:
        return self.suffix.indices

    @property
    def positions(self) -> torch.Tensor:
        return self.suffix.positions

    def to(self, device: torch.device | str) -> PrefixBatch:
        return PrefixBatch(self.prefix.to(device), self.suffix.to(device), self.rows.to(device))


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for i in range(length):
        if any(s[i] != first[i] for s in sequences):
            return i
    return length


class EncodedPrompts:
    """The prompts' token ids, computed once, plus the answer tokens and the correct columns."""

    def __init__(self, tokenizer, prompts: Sequence[Prompt], groups: Sequence[str]) -> None:
        if not prompts:
            raise ValueError("no prompts to encode")
        self.prompts = list(prompts)
        first = self.prompts[0]
        self.answers = find_answer_tokens(tokenizer, first.text, dict(zip(groups, first.options)))
        # Every option text of the task (the letters of BBQ, say) scored by its first token after the
        # first prompt: the prompts of a task end alike, so an option tokenises the same after each.
        others = [t for t in dict.fromkeys(o for p in self.prompts for o in p.options) if t not in self.answers.by_text]
        by_text = dict(self.answers.by_text)
        for text, tail in first_tokens(tokenizer, first.text, others).items():
            if not tail:
                raise AnswerTokenError(f"option {text!r} has no token after the prompt {first.text!r}")
            by_text[text] = tail[0]
        #: [N, K] the scored token of each group for each prompt
        self.answer_ids = torch.tensor([[by_text[o] for o in p.options] for p in self.prompts], dtype=torch.long)
        clash = [p.index for p, row in zip(self.prompts, self.answer_ids.tolist()) if len(set(row)) != len(row)]
        if clash:
            raise AnswerTokenError(
                f"prompts {clash[:5]} score the same first token for two groups: {self.prompts[clash[0]].options}"
            )
        prefix = _special_prefix(tokenizer)
        texts = [p.text for p in self.prompts]
        self.token_ids: list[list[int]] = [prefix + ids for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        self.lengths = torch.tensor([len(ids) for ids in self.token_ids])
        #: The largest token id fed to the model, and the tokenizer's size (for the vocabulary check).
        self.max_token_id = max(max(ids) for ids in self.token_ids)
        self.vocab_size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
        self.correct = torch.tensor([p.correct for p in self.prompts])
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        self.sentence_of = torch.tensor([p.sentence_index for p in self.prompts])
        # Every prompt of a sentence starts with the sentence: the shared token prefix, at most
        # all but each prompt's last token (which must run to give the next-token logits).
        by_sentence: dict[int, list[int]] = {}
        for i, p in enumerate(self.prompts):
            by_sentence.setdefault(p.sentence_index, []).append(i)
        self.prefix_length = torch.zeros(len(self.prompts), dtype=torch.long)
        for members in by_sentence.values():
            shared = _common_prefix_length([self.token_ids[i] for i in members])
            shared = min(shared, min(len(self.token_ids[i]) for i in members) - 1)
            self.prefix_length[members] = shared
        self.prefix_usable = bool((self.prefix_length >= 1).all())
        self._packed: tuple[tuple[int, int, bytes], list[TreeBatch]] | None = None

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def batches(self, batch_size: int, indices: Sequence[int] | torch.Tensor | None = None) -> Iterator[Batch]:
        """Batches of ``indices`` (default: all), sorted by length so little padding is wasted."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chosen = torch.arange(len(self)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        positions = torch.argsort(self.lengths[chosen], stable=True)
        for start in range(0, len(positions), batch_size):
            batch_positions = positions[start : start + batch_size]
            yield self.make_batch(chosen[batch_positions], batch_positions)

    def _sentence_groups(self, chosen: torch.Tensor) -> list[list[int]]:
        """Positions in ``chosen`` grouped by sentence, sentences in order of prompt length."""
        groups: dict[int, list[int]] = {}
        for position, index in enumerate(chosen.tolist()):
            groups.setdefault(int(self.sentence_of[index]), []).append(position)
        return sorted(groups.values(), key=lambda g: int(self.lengths[chosen[g[0]]]))

    @staticmethod
    def _cut(groups: list[list[int]], max_prompts: int) -> Iterator[list[list[int]]]:
        """Consecutive runs of whole groups with at most ``max_prompts`` members (at least one group)."""
        batch: list[list[int]] = []
        for group in groups:
            if batch and sum(map(len, batch)) + len(group) > max_prompts:
                yield batch
                batch = []
            batch.append(group)
        if batch:
            yield batch

    def prefix_batches(
        self, max_prompts: int, indices: Sequence[int] | torch.Tensor | None = None, per_row: int | None = None
    ) -> Iterator[PrefixBatch]:
        """Batches of whole sentences (their prompts among ``indices``), at most ``max_prompts`` prompts
        each (at least one sentence), sentences in order of prompt length. ``per_row``: split each
        sentence's prompts into runs of at most this many, each with its own prefix (the
        out-of-memory back-off; None keeps sentences whole)."""
        chosen = torch.arange(len(self)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        groups = self._sentence_groups(chosen)
        if per_row is not None:
            groups = [g[i : i + per_row] for g in groups for i in range(0, len(g), per_row)]
        for batch in self._cut(groups, max_prompts):
            yield self._prefix_batch(chosen, batch)

    def tree_batches(
        self, max_prompts: int, indices: Sequence[int] | torch.Tensor | None = None, per_row: int | None = None
    ) -> list[TreeBatch]:
        """Like :meth:`prefix_batches`, but each sentence's prompts packed into one row as a token tree
        (see :mod:`fairness_callback.probe.packing`), at most ``per_row`` prompts a row (None: as many as a
        tree holds). The batches of the last call are kept: a probe asks for the same ones every time."""
        chosen = torch.arange(len(self)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        per_row = min(per_row or MAX_PROMPTS_PER_TREE, MAX_PROMPTS_PER_TREE)
        key = (max_prompts, per_row, chosen.numpy().tobytes())
        if self._packed is None or self._packed[0] != key:
            rows = [g[i : i + per_row] for g in self._sentence_groups(chosen) for i in range(0, len(g), per_row)]
            batches = []
            for groups in self._cut(rows, max_prompts):
                positions = torch.tensor([p for g in groups for p in g])
                trees = [build_tree([self.token_ids[i] for i in chosen[g].tolist()]) for g in groups]
                batches.append(pack_trees(trees, self.pad_id, chosen[positions], positions))
            self._packed = (key, batches)
        return self._packed[1]

    def _prefix_batch(self, chosen: torch.Tensor, groups: list[list[int]]) -> PrefixBatch:
        positions = torch.tensor([p for g in groups for p in g])
        indices = chosen[positions]
        heads = [int(chosen[g[0]]) for g in groups]
        rows = torch.tensor([row for row, g in enumerate(groups) for _ in g])
        prefix_tokens = [self.token_ids[i][: int(self.prefix_length[i])] for i in heads]
        prefix = self._left_pad(prefix_tokens, torch.arange(len(groups)), torch.arange(len(groups)))
        suffix_tokens = [self.token_ids[i][int(self.prefix_length[i]) :] for i in indices.tolist()]
        suffix = self._left_pad(suffix_tokens, indices, positions)
        suffix.position_ids += self.prefix_length[indices].unsqueeze(1)
        return PrefixBatch(prefix, suffix, rows)

    def _left_pad(self, sequences: list[list[int]], indices: torch.Tensor, positions: torch.Tensor) -> Batch:
        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        return Batch(indices, positions, input_ids, attention_mask, position_ids)

    def make_batch(self, indices: torch.Tensor, positions: torch.Tensor | None = None) -> Batch:
        """Left-pad the given prompts; position ids count real tokens only, from 0."""
        if positions is None:
            positions = torch.arange(len(indices))
        return self._left_pad([self.token_ids[i] for i in indices.tolist()], indices, positions)
