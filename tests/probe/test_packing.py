"""Token-tree packing: the trie, the tree attention mask, and rows of more prompts than one tree holds."""

import random

import pytest
import torch

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.probe.packing import MAX_PROMPTS_PER_TREE, build_tree, pack_trees


def test_trie_holds_each_shared_prefix_once():
    tree = build_tree([[1, 2, 3, 9], [1, 2, 4, 8], [1, 5, 7]])
    # inner nodes: 1, 2, 3, 4 (under 2), 5 (under 1); last tokens are leaves of their own
    assert tree.tokens == (1, 2, 3, 4, 5)
    assert tree.depths == (0, 1, 2, 2, 1)
    assert tree.bits == (0b111, 0b011, 0b001, 0b010, 0b100)
    assert tree.last_tokens == (9, 8, 7) and tree.lengths == (4, 4, 3)


def test_identical_prompts_keep_their_own_leaves():
    tree = build_tree([[1, 2, 3], [1, 2, 3]])
    assert tree.tokens == (1, 2) and tree.last_tokens == (3, 3)


def test_tree_limits_are_errors():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        build_tree([[1, 2], [3]])
    with pytest.raises(ValueError, match=f"at most {MAX_PROMPTS_PER_TREE} prompts"):
        build_tree([[1, k] for k in range(MAX_PROMPTS_PER_TREE + 1)])


def brute_force_mask(sequences: list[list[int]], width: int, slots: int) -> torch.Tensor:
    """Each prompt's path through the row, laid out as pack_trees does, by walking the trie by hand."""
    nodes: dict[tuple[int, ...], int] = {}
    mask = torch.eye(width, dtype=torch.bool)
    for k, sequence in enumerate(sequences):
        path = []
        for depth in range(len(sequence) - 1):
            path.append(nodes.setdefault(tuple(sequence[: depth + 1]), len(nodes)))
        path.append(width - slots + k)
        for i, node in enumerate(path):
            mask[node, path[: i + 1]] = True
    return mask


def test_attention_mask_sees_exactly_each_tokens_ancestors():
    rng = random.Random(0)
    rows = []
    for _ in range(3):
        stem = [rng.randrange(5) for _ in range(rng.randrange(1, 4))]
        rows.append([stem + [rng.randrange(3) for _ in range(rng.randrange(1, 5))] for _ in range(rng.randrange(1, 7))])
    trees = [build_tree(r) for r in rows]
    count = sum(map(len, rows))
    batch = pack_trees(trees, pad_id=0, indices=torch.arange(count), positions=torch.arange(count))
    mask = batch.attention_mask()
    _, _, width, _ = mask.shape
    slots = batch.slots.shape[1]
    for row, sequences in enumerate(rows):
        assert torch.equal(mask[row, 0], brute_force_mask(sequences, width, slots)), f"row {row}"
        # the leaf of prompt k sits at its prompt's position, with its last token
        for k, sequence in enumerate(sequences):
            leaf = width - slots + k
            assert batch.input_ids[row, leaf] == sequence[-1] and batch.position_ids[row, leaf] == len(sequence) - 1
    assert batch.slots.sum() == count


def test_sentences_with_more_prompts_than_a_tree_holds_are_split(bpe_tokenizer, tiny_neox):
    """32 option-order seeds give 64 prompts a sentence, one more than a tree holds: two rows, same numbers."""
    sentences = ProbeSet(list(ProbeSet.builtin())[:2], name="two")
    seeds = tuple(range(32))
    tree = FairnessProbe(bpe_tokenizer, sentences, seeds=seeds, batch_size=256, prefix_sharing="tree")
    plain = FairnessProbe(bpe_tokenizer, sentences, seeds=seeds, batch_size=64, prefix_sharing="off")
    (batch,) = tree.encoded.tree_batches(256)
    assert batch.input_ids.shape[0] == 4 and int(batch.slots.sum()) == 128
    assert (tree.score(tiny_neox).logprobs - plain.score(tiny_neox).logprobs).abs().max() < 1e-4
