"""The probe under torch.distributed with 2 real gloo processes (torchrun), no training framework."""

import json
import math
from pathlib import Path

import pytest

from support import make_model, make_tokenizer, small_probe, torchrun

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

SCRIPT = Path(__file__).parents[1] / "dist" / "probe_gloo.py"


def read_ranks(outdir: Path) -> list[dict]:
    return [json.loads((outdir / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_ranks_agree_with_one_process(tmp_path):
    torchrun(SCRIPT, str(tmp_path), "equal", tmp_path=tmp_path)
    rank0, rank1 = read_ranks(tmp_path)
    assert rank0["metrics"] == rank1["metrics"]
    assert rank0["forward_calls"] == rank1["forward_calls"]  # equal shares: a sharded model cannot hang
    tokenizer = make_tokenizer()
    model = make_model(tokenizer).eval()
    probe = small_probe(tokenizer, sentences=20, seeds=(0, 1))
    single = probe.run(model).metrics
    for key, value in single.items():
        assert rank0["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), key
    # an odd number of prompts: one rank pads its shard with a repeated prompt that must not count twice
    subset = probe.score(model, indices=list(range(41))).ranks.tolist()
    assert rank0["subset_ranks"][:41] == subset[:41]
    assert all(math.isnan(v) for row in rank0["subset_ranks"][41:] for v in row)


def test_a_failing_rank_does_not_hang_the_others(tmp_path):
    torchrun(SCRIPT, str(tmp_path), "fail", tmp_path=tmp_path, timeout=180)
    rank0, rank1 = read_ranks(tmp_path)
    # both ranks raise the same ProbeFailure, naming the rank that failed and why (issue #18)
    expected = "the probe failed on rank(s) 1: rank 1: RuntimeError: injected failure on rank 1"
    assert rank0["error"] == rank1["error"] == expected
    assert "metrics" not in rank0 and "metrics" not in rank1


def test_deepspeed_zero3_engine_is_probed_through_its_module(tmp_path):
    """Tested where DeepSpeed initialises on the CPU (it does here, with gloo)."""
    pytest.importorskip("deepspeed")
    torchrun(Path(__file__).parents[1] / "dist" / "deepspeed_zero3.py", str(tmp_path), tmp_path=tmp_path, timeout=300)
    rank0, rank1 = read_ranks(tmp_path)
    assert rank0["engine"] == "DeepSpeedEngine" and rank0["partitioned"] and rank0["path"] == "tree"
    assert rank0["probed"] == rank1["probed"] == [False, True]
    assert rank0["after"] == rank1["after"]
    for key, value in rank0["reference"].items():  # the sharded engine scores the same weights the same
        assert rank0["before"][key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
    assert rank0["after"]["jsdp/gap"] != rank0["before"]["jsdp/gap"]  # it trained, and the probe saw it
