"""Pack each sentence's prompts into one row as a token tree: every shared prefix runs once.

A sentence's prompts (2 occupations x the option-order seeds) share the sentence, and the two
prompts of one seed also share the option list (and orders that begin alike share more). A trie
of their token ids holds each shared prefix once; a tree attention mask lets every token see only
its own ancestors, and its position id is its depth, so each prompt's last token sees exactly the
context it would see alone. One forward call scores a batch of such rows with no key/value cache
(nothing is copied per prompt).

Row layout: the trie's inner nodes in creation order (a parent always comes before its children),
then padding, then one slot per prompt holding its last token, so ``logits_to_keep=P`` gives every
prompt's next-token logits. Padding and empty slots attend only to themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "build_tree",
    "MAX_PROMPTS_PER_TREE",
    "pack_trees",
    "PromptTree",
    "TreeBatch",
]

#: Prompts one row can hold: each node records the prompts that pass through it as bits of an int64.
MAX_PROMPTS_PER_TREE = 63


@dataclass(frozen=True)
class PromptTree:
    """One row's trie: ``tokens[n]``, ``depths[n]`` and ``bits[n]`` (bit k set: prompt k passes
    through node n) of its inner nodes, and each prompt's last token (a leaf of its own)."""

    tokens: tuple[int, ...]
    depths: tuple[int, ...]
    bits: tuple[int, ...]
    last_tokens: tuple[int, ...]
    lengths: tuple[int, ...]


def build_tree(sequences: Sequence[Sequence[int]]) -> PromptTree:
    """The trie of ``sequences`` without their last tokens; each sequence must be at least 2 tokens."""
    if len(sequences) > MAX_PROMPTS_PER_TREE:
        raise ValueError(f"a token tree holds at most {MAX_PROMPTS_PER_TREE} prompts, got {len(sequences)}")
    children: dict[tuple[int, int], int] = {}
    tokens: list[int] = []
    depths: list[int] = []
    bits: list[int] = []
    for k, sequence in enumerate(sequences):
        if len(sequence) < 2:
            raise ValueError("a packed prompt needs at least 2 tokens")
        parent = -1
        for depth, token in enumerate(sequence[:-1]):
            node = children.get((parent, token))
            if node is None:
                node = children[(parent, token)] = len(tokens)
                tokens.append(token)
                depths.append(depth)
                bits.append(0)
            bits[node] |= 1 << k
            parent = node
    return PromptTree(
        tuple(tokens), tuple(depths), tuple(bits), tuple(s[-1] for s in sequences), tuple(len(s) for s in sequences)
    )


@dataclass
class TreeBatch:
    """Packed model inputs: one row per sentence, one output slot per prompt.

    ``indices`` are the prompts' indices in the full prompt list and ``positions`` their positions
    in the index list the batch was cut from, in the order of the true entries of ``slots``
    ([B, P] bool, row-major). ``position_ids`` are the tokens' depths in their trie and ``bits``
    the prompts that pass through each token (0 for padding); :meth:`attention_mask` derives the
    tree mask from them on the batch's device.
    """

    indices: torch.Tensor
    positions: torch.Tensor
    input_ids: torch.Tensor
    position_ids: torch.Tensor
    bits: torch.Tensor
    slots: torch.Tensor

    def to(self, device: torch.device | str) -> TreeBatch:
        return TreeBatch(
            self.indices,
            self.positions,
            self.input_ids.to(device, non_blocking=True),
            self.position_ids.to(device, non_blocking=True),
            self.bits.to(device, non_blocking=True),
            self.slots.to(device, non_blocking=True),
        )

    def attention_mask(self) -> torch.Tensor:
        """[B, 1, N, N] bool, True where token i may attend to token j: j is i or one of its ancestors.

        In a trie, j is an ancestor-or-self of i exactly when it is no deeper and every prompt
        through i also passes through j. Padding and empty slots see only themselves.
        """
        bits, depth = self.bits, self.position_ids
        real = bits != 0
        sees = (depth[:, None, :] <= depth[:, :, None]) & ((bits[:, :, None] & ~bits[:, None, :]) == 0)
        sees &= real[:, :, None] & real[:, None, :]
        sees |= torch.eye(bits.shape[1], dtype=torch.bool, device=bits.device)
        return sees.unsqueeze(1)


def pack_trees(trees: Sequence[PromptTree], pad_id: int, indices: torch.Tensor, positions: torch.Tensor) -> TreeBatch:
    """One :class:`TreeBatch` of ``trees`` (their prompts in order are ``indices`` / ``positions``)."""
    slots = max(len(t.last_tokens) for t in trees)
    width = max(len(t.tokens) for t in trees) + slots
    input_ids = torch.full((len(trees), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(trees), width), dtype=torch.long)
    bits = torch.zeros((len(trees), width), dtype=torch.long)
    used = torch.zeros((len(trees), slots), dtype=torch.bool)
    for row, tree in enumerate(trees):
        inner, prompts = len(tree.tokens), len(tree.last_tokens)
        leaves = slice(width - slots, width - slots + prompts)
        input_ids[row, :inner] = torch.tensor(tree.tokens)
        position_ids[row, :inner] = torch.tensor(tree.depths)
        bits[row, :inner] = torch.tensor(tree.bits)
        input_ids[row, leaves] = torch.tensor(tree.last_tokens)
        position_ids[row, leaves] = torch.tensor(tree.lengths) - 1
        bits[row, leaves] = 1 << torch.arange(prompts)
        used[row, :prompts] = True
    return TreeBatch(indices, positions, input_ids, position_ids, bits, used)
