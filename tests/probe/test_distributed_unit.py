"""Sharding and the score state, in one process (real multi-process runs: tests/dist/)."""

import math

import torch

from fairness_callback.probe.distributed import ProbeScoreState, any_rank, shard_indices, world


def test_shards_are_equal_cover_everything_once_and_balance_lengths():
    lengths = torch.tensor([5, 9, 3, 7, 7, 2, 8, 4, 6, 1, 10])
    shards = [shard_indices(lengths, r, 3) for r in range(3)]
    assert {len(s) for s, _ in shards} == {4}
    real = torch.cat([s[:n] for s, n in shards])
    assert sorted(real.tolist()) == list(range(11))
    sums = [int(lengths[s[:n]].sum()) for s, n in shards]
    assert max(sums) - min(sums) <= 10
    alone, count = shard_indices(lengths, 0, 1)
    assert count == 11 and sorted(alone.tolist()) == list(range(11))


def test_score_state_marks_unscored_rows_nan():
    state = ProbeScoreState(num_prompts=4, num_options=3)
    state.update(torch.tensor([2, 0]), torch.tensor([[1.0, 2, 3], [4, 5, 6]]), torch.tensor([[-1.0, -2, -3], [-4, -5, -6]]))
    ranks, logprobs = state.compute()
    assert ranks[2].tolist() == [1, 2, 3] and ranks[0].tolist() == [4, 5, 6]
    assert logprobs.dtype == torch.float32 and logprobs[0].tolist() == [-4, -5, -6]
    assert all(math.isnan(v) for v in ranks[1].tolist() + ranks[3].tolist())


def test_single_process_world():
    assert world() == (0, 1)
    assert any_rank(True) and not any_rank(False)
