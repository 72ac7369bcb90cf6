"""Issue #18 on two real gloo ranks: a probe that fails on one rank (at path choice, batch building,
the forward, the metrics, in the second probe of a suite, or out of memory) never takes the run
down. FairnessTracker in a DDP loop and the HF Trainer under torchrun, Lightning DDP; each launch
runs every scenario of tests/dist/faults.py in turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fairness_callback.training.history import read_history
from support import run_script, torchrun

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

SCRIPT = Path(__file__).parents[1] / "dist" / "faults.py"
FAILING = {
    "path-1": ("path", 1),
    "batches-1": ("batches", 1),
    "forward-1": ("forward", 1),
    "metrics-1": ("metrics", 1),
    "forward-0": ("forward", 0),
    "suite-second-1": ("forward", 1),
}


def ranks(outdir: Path, framework: str) -> tuple[dict, dict]:
    return tuple(json.loads((outdir / f"{framework}-rank{r}.json").read_text()) for r in range(2))  # type: ignore[return-value]


def assert_same_run(rank0: dict, rank1: dict, keys=("final_step", "stopped_reason")) -> None:
    for scenario in rank0:
        for key in keys:
            assert rank0[scenario][key] == rank1[scenario][key], (scenario, key)


def assert_probe_failed_lines(history: Path, scenario: str) -> None:
    where, rank = FAILING[scenario]
    (line,) = [r for r in read_history(history) if r["event"] == "probe_failed"]
    assert line["step"] == 2 and line["ranks"] == {str(rank): f"RuntimeError: injected {where} failure"}
    assert line["error_type"] == "RuntimeError" and line["message"] == f"injected {where} failure"
    assert line["probe"] == ("they" if scenario == "suite-second-1" else None)


def test_tracker_in_a_ddp_loop_survives_one_ranks_probe_failure(tmp_path):
    torchrun(SCRIPT, str(tmp_path), "tracker", tmp_path=tmp_path, timeout=400)
    rank0, rank1 = ranks(tmp_path, "tracker")
    assert_same_run(rank0, rank1, keys=("final_step", "stopped_reason", "outcomes", "last_metrics"))
    # the scripted gap grows at every probe that succeeds: a clean run stops at step 4, one whose step-2
    # probe failed at step 6 (the failed probe is no vote), one whose other suite member failed at 4
    assert (rank0["clean"]["final_step"], rank0["clean"]["stopped_reason"]) == (4, "gap_grew")
    for scenario, (where, rank) in FAILING.items():
        assert rank0[scenario]["final_step"] == (4 if scenario == "suite-second-1" else 6), scenario
        assert rank0[scenario]["stopped_reason"] == "gap_grew", scenario
        outcomes = rank0[scenario]["outcomes"]
        assert [o["failed"] for o in outcomes] == [o["step"] == 2 for o in outcomes], scenario
        probe = "they" if scenario == "suite-second-1" else "None"
        assert outcomes[1]["failures"] == {probe: {str(rank): f"RuntimeError: injected {where} failure"}}, scenario
        assert_probe_failed_lines(tmp_path / "tracker" / scenario / "h.jsonl", scenario)
        if scenario == "suite-second-1":  # the first probe of the suite kept its metrics at the failed step
            assert outcomes[1]["failed"] and rank0[scenario]["last_metrics"]["gender/jsdp/gap"] is not None
    # out of memory on rank 1 only: every rank backs off to the same size, and the numbers are the clean run's
    oom0, oom1, clean = rank0["oom-1"], rank1["oom-1"], rank0["clean"]
    assert not any(o["failed"] for o in oom0["outcomes"])
    assert oom0["batch_limit"] == oom1["batch_limit"] is not None
    assert [o["step"] for o in oom0["outcomes"]] == [o["step"] for o in clean["outcomes"]]
    assert oom0["stopped_reason"] == clean["stopped_reason"]
    for key, value in clean["last_metrics"].items():
        assert oom0["last_metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key


def test_hf_trainer_under_torchrun_survives_one_ranks_probe_failure(tmp_path):
    torchrun(SCRIPT, str(tmp_path), "hf", tmp_path=tmp_path, timeout=500)
    rank0, rank1 = ranks(tmp_path, "hf")
    assert_same_run(rank0, rank1, keys=("final_step", "stopped_reason", "probes", "last_metrics"))
    assert (rank0["clean"]["final_step"], rank0["clean"]["stopped_reason"]) == (4, "gap_grew_no_loss")
    for scenario in FAILING:
        assert rank0[scenario]["final_step"] == (4 if scenario == "suite-second-1" else 6), scenario
        assert rank0[scenario]["stopped_reason"] == "gap_grew_no_loss", scenario
        assert_probe_failed_lines(tmp_path / "hf" / scenario / "fairness_history.jsonl", scenario)
    clean, oom = rank0["clean"], rank0["oom-1"]
    assert (oom["final_step"], oom["stopped_reason"], oom["probes"]) == (
        clean["final_step"],
        clean["stopped_reason"],
        clean["probes"],
    )


def test_lightning_ddp_survives_one_ranks_probe_failure(tmp_path):
    run_script([str(SCRIPT), str(tmp_path), "lightning"], tmp_path, timeout=600)
    rank0, rank1 = ranks(tmp_path, "lightning")
    assert_same_run(rank0, rank1, keys=("final_step", "stopped_reason", "last_metrics"))
    assert (rank0["clean"]["final_step"], rank0["clean"]["stopped_reason"]) == (4, "gap_grew_no_loss")
    for scenario in FAILING:
        assert rank0[scenario]["final_step"] == (4 if scenario == "suite-second-1" else 6), scenario
        assert_probe_failed_lines(tmp_path / "lightning" / scenario / "h.jsonl", scenario)
    assert rank0["oom-1"]["final_step"] == 4
    for key, value in rank0["clean"]["last_metrics"].items():
        assert rank0["oom-1"]["last_metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
