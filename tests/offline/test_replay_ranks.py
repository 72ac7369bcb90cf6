"""Replay on many processes (``torchrun ... -m fairness_callback replay``), against the one-process
replay: the same probe lines value for value (times aside), with 2 and 4 gloo ranks and with two
torchrun launches forming two "nodes" on localhost; a failing checkpoint named while the others go
on; a rank killed mid-series losing only its checkpoint in flight; a rerun that skips what any rank
finished. And the merge of the ranks' files, in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fairness_callback.offline.replay_ranks import merge_rank_files, rank_files
from fairness_callback.training.history import read_history
from fairness_callback.training.records import ProbeRecord
from support import free_port, make_model, make_tokenizer

REPO = Path(__file__).resolve().parents[2]
TIMES = {"time", "probe_seconds", "load_seconds", "run_id"}
PROBE = ["--seeds", "0"]


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    """Five tiny checkpoints, ``checkpoint-0`` ... ``checkpoint-8``, each with its tokenizer."""
    root = tmp_path_factory.mktemp("series") / "run"
    tokenizer = make_tokenizer()
    for i in range(5):
        make_model(tokenizer, seed=i).save_pretrained(root / f"checkpoint-{2 * i}")
        tokenizer.save_pretrained(root / f"checkpoint-{2 * i}")
    return root


def env(tmp_path: Path, **extra: str) -> dict:
    out = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    out.update({"TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests" / "dist")}, **extra)
    return out


def one_process(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fairness_callback", "replay", *args, *PROBE],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )


def torchrun(args: list[str], tmp_path: Path, nproc: int, **extra: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "torchrun"), f"--nproc_per_node={nproc}", "--master_port", str(free_port())]
    return subprocess.run(
        [*command, "-m", "fairness_callback", "replay", *args, *PROBE],
        env=env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def probe_lines(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMES} for r in read_history(path) if r["event"] == "probe"]


@pytest.fixture(scope="module")
def reference(series, tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("one")
    ok(one_process([str(series), "--history", str(tmp / "h.jsonl")], tmp))
    lines = probe_lines(tmp / "h.jsonl")
    assert [r["step"] for r in lines] == [0, 2, 4, 6, 8]
    return lines


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("nproc", [2, 4])
def test_ranks_write_the_one_process_lines(series, reference, tmp_path, nproc):
    history = tmp_path / "h.jsonl"
    done = ok(torchrun([str(series), "--history", str(history)], tmp_path, nproc))
    assert probe_lines(history) == reference  # value for value, in step order
    starts = [r for r in read_history(history) if r["event"] == "run_start"]
    assert len(starts) == 1 and starts[0]["ranks"] == nproc and starts[0]["framework"] == "replay"
    assert not rank_files(history).exists()  # merged and removed
    assert done.stdout.count("5 checkpoint(s) probed") == 1  # rank 0 prints the whole series' summary
    # a rerun probes nothing: every checkpoint is in the history
    again = ok(torchrun([str(series), "--history", str(history)], tmp_path, nproc))
    assert "0 checkpoint(s) probed, 5 already" in again.stdout and probe_lines(history) == reference


@pytest.mark.slow
@pytest.mark.distributed
def test_two_nodes_on_localhost(series, reference, tmp_path):
    history = tmp_path / "h.jsonl"
    port = str(free_port())
    launches = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "torchrun"),
                "--nnodes=2",
                f"--node_rank={node}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                "-m",
                "fairness_callback",
                "replay",
                str(series),
                "--history",
                str(history),
                *PROBE,
            ],
            env=env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [launch.communicate(timeout=600) for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], outputs
    assert probe_lines(history) == reference
    assert [r["ranks"] for r in read_history(history) if r["event"] == "run_start"] == [2]


@pytest.mark.slow
@pytest.mark.distributed
def test_a_bad_checkpoint_is_named_and_the_others_go_on(series, reference, tmp_path):
    broken = tmp_path / "run"
    subprocess.run(["cp", "-r", str(series), str(broken)], check=True)
    (broken / "checkpoint-6" / "model.safetensors").write_bytes(b"not a safetensors file")
    history = tmp_path / "h.jsonl"
    done = torchrun([str(broken), "--history", str(history)], tmp_path, 2)
    assert done.returncode == 1
    assert "4 checkpoint(s) probed, 0 already" in done.stdout and f"failed: {broken / 'checkpoint-6'}" in done.stdout
    assert [r["step"] for r in probe_lines(history)] == [0, 2, 4, 8]
    # fixed, the rerun probes only that one, into the same run
    subprocess.run(["cp", str(series / "checkpoint-6" / "model.safetensors"), str(broken / "checkpoint-6")], check=True)
    ok(torchrun([str(broken), "--history", str(history)], tmp_path, 2))
    lines = read_history(history)
    assert [r["step"] for r in lines if r["event"] == "probe"] == [0, 2, 4, 8, 6]
    assert len({r["run_id"] for r in lines}) == 1


@pytest.mark.slow
@pytest.mark.distributed
def test_a_killed_rank_loses_only_its_checkpoint_in_flight(tmp_path):
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for i in range(6):
        torch.save({"state_dict": make_model(tokenizer, seed=i).state_dict()}, folder / f"step={2 * i}.ckpt")
    paths = [str(p) for p in sorted(folder.glob("*.ckpt"), key=lambda p: int(p.stem.split("=")[1]))]
    args = [*paths, "--model-factory", "replay_factory:tiny_model", "--tokenizer", str(tmp_path / "tokenizer")]
    history = tmp_path / "h.jsonl"
    # rank 1 takes steps 2, 6, 10 and dies loading its second (step 6); rank 0 goes on with 0, 4, 8
    died = torchrun([*args, "--history", str(history)], tmp_path, 2, REPLAY_KILL_RANK="1", REPLAY_KILL_AT_CALL="2")
    assert died.returncode != 0
    left = rank_files(history)
    finished = {r["step"] for f in left.glob("rank-*.jsonl") for r in read_history(f)}
    assert 2 in finished and 6 not in finished  # rank 1's first line is on disk, its second was in flight
    again = ok(torchrun([*args, "--history", str(history)], tmp_path, 2))
    assert f"{6 - len(finished)} checkpoint(s) probed, {len(finished)} already" in again.stdout
    reference_history = tmp_path / "one.jsonl"
    ok(one_process([*args, "--history", str(reference_history)], tmp_path))
    steps = [r["step"] for r in probe_lines(history)]
    assert sorted(steps) == [0, 2, 4, 6, 8, 10] and len(steps) == 6  # none probed twice
    by_step = {r["step"]: r for r in probe_lines(history)}
    for line in probe_lines(reference_history):
        mine = by_step[line["step"]]
        assert {k: v for k, v in mine.items() if k != "jsdp/gap_sudden"} == {
            k: v for k, v in line.items() if k != "jsdp/gap_sudden"
        }


def test_merge_appends_each_run_s_new_lines_in_step_order_once(tmp_path):
    history = tmp_path / "h.jsonl"
    folder = rank_files(history)
    folder.mkdir()
    for rank, steps in ((0, [4, 0]), (1, [2, 6])):
        path = folder / f"rank-{rank}.jsonl"
        path.write_text(
            "".join(
                json.dumps({**ProbeRecord(step=s, values={"jsdp/gap": 0.01 * s, "checkpoint": f"c{s}"}).to_line(), "run_id": "r"})
                + "\n"
                for s in steps
            )
        )
    with (folder / "rank-1.jsonl").open("a") as handle:  # a repeat: written once
        handle.write(
            json.dumps({**ProbeRecord(step=2, values={"jsdp/gap": 0.02, "checkpoint": "c2"}).to_line(), "run_id": "r"}) + "\n"
        )
    assert merge_rank_files(history) == 4
    lines = read_history(history)
    assert [r["step"] for r in lines] == [0, 2, 4, 6] and all("jsdp/gap_sudden" in r for r in lines)
    assert not folder.exists() and merge_rank_files(history) == 0
