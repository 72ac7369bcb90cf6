"""benchmarks/gpu_check.py runs end to end with ``--tiny`` on the CPU, so the GPU script cannot rot.

No timing is checked (meaningless at this size and on a shared machine): what is checked is that
every section runs against the current package, that the JSON line has the structure the GPU run
will be read by, and the things that can fail: float32 ranks equal to one prompt at a time, the
memory after the probes equal to before (where CUDA measures it), the weights bit-identical with
and without the callback, every ratio positive and finite, the precision matrix's answers within
their dtype's rounding of float32.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import assert_full_precision_matrix

pytestmark = [pytest.mark.slow, pytest.mark.data]

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
SECTIONS = ("exact", "speed", "memory", "train", "precision")


def run_check(tmp_path: Path, *args: str) -> dict:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text()) == figures
    return figures


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    return run_check(tmp_path_factory.mktemp("gpu_check"))


def test_runs_every_section_without_errors(figures):
    assert figures["tiny"] is True and figures["errors"] == {}
    assert figures["sections"] == list(SECTIONS)
    for section in SECTIONS:
        assert figures[section], section
        assert figures["section_s"][section] >= 0
    # Only a missing WinoBias folder may skip anything on this run.
    assert all(key.endswith("winobias") for key in figures["skipped"]), figures["skipped"]
    assert positive(figures["matmul_bf16_tflops"])
    assert figures["peak_bf16_tflops"] is None or positive(figures["peak_bf16_tflops"])
    assert figures["tokenizer"]["size"] > 0


def test_exact_float32_ranks_equal_and_bf16_moves_are_reported(figures):
    exact = figures["exact"]
    models = [key for key in exact if key != "sentences"]
    assert {exact[m]["model_type"] for m in models} == {"gpt_neox", "llama"}
    for model in models:
        assert exact[model]["auto_path"] == "tree"
        for path in ("tree", "cache", "off"):
            f32, bf16 = exact[model]["float32"][path], exact[model]["bfloat16"][path]
            assert f32["path"] == path and bf16["path"] == path
            assert f32["ranks_equal"] and f32["moved"] == 0 and f32["max_rank_diff"] == 0, (model, path)
            assert f32["metrics_beyond_se"] == [] and f32["logprob_max_abs_diff"] < 1e-4
            assert f32["cells"] == bf16["cells"] == 3 * exact[model]["float32"]["prompts"]
            # bf16: every moved rank is counted, and a move bigger than the near-ties around it would show.
            assert bf16["moved"] == sum(bf16["rank_diff_counts"].values()) or len(bf16["rank_diff_counts"]) == 10
            assert 0 <= bf16["moved_beyond_window"] <= bf16["moved"]
            assert bf16["metric_max_z"] >= 0 and math.isfinite(bf16["metric_max_z"])
            assert isinstance(bf16["metrics_beyond_se"], list)


def test_speed_figures_are_positive_ratios(figures):
    speed = figures["speed"]
    assert len(speed) == 2
    for model, entry in speed.items():
        assert entry["sets"], model
        for name, row in entry["sets"].items():
            assert row["shipped_path"] == "tree"
            assert row["tree_tokens"] < row["cache_tokens"] < row["tokens"]
            assert row["attention_pairs"]["tree"] < row["attention_pairs"]["off"]
            for key in ("plain_over_floor", "shipped_over_floor", "shipped_effective_tflops"):
                assert positive(row[key]), (model, name, key)
            for key in ("prompts_per_s", "tokens_per_s", "tflops", "over_matmul"):
                assert set(row[key]) == {"floor", "plain", "shipped"} and all(map(positive, row[key].values())), key
            assert (
                row["over_peak"] is None if figures["peak_bf16_tflops"] is None else all(map(positive, row["over_peak"].values()))
            )


def test_memory_after_probes_equals_before_where_measured(figures):
    memory = figures["memory"]
    assert memory["probes"] == 5 and positive(memory["model_bytes"])
    assert set(memory["paths"]) == {"tree", "cache", "off"}
    for path, row in memory["paths"].items():
        assert row["path"] == path
        if figures["device"] == "cuda":
            assert row["after_equals_before"] is True, row
            assert positive(row["peak_extra_over_model"]) and row["peak_over_model"] > 1
        else:  # no CUDA allocator here: null, never a made-up figure
            assert row["after_equals_before"] is None and row["peak_extra_over_model"] is None
            assert positive(row["cpu_rss_mb_after"])


def test_training_weights_equal_with_and_without_the_callback(figures):
    train = figures["train"]
    assert train["weights_equal"] is True and train["baseline_repeatable"] is True and train["weights_changed"] is True
    assert train["cublas_workspace_config"] == ":4096:8"
    timed = train["runs"]["timed_with"]
    assert timed["steps"] == train["steps"]
    assert timed["probe_steps"] == list(range(0, train["steps"] + 1, train["every"]))  # step 0, then every N
    for key in ("callback_pct", "callback_after_start_pct", "probe_s_mean", "step_s", "steps_per_probe_for_3pct"):
        assert positive(train[key]), key
    assert train["callback_after_start_pct"] < train["callback_pct"]


def test_larger_speed_model_is_skipped_when_time_is_short(tmp_path):
    figures = run_check(tmp_path, "--sections", "speed", "--reserve", "100000")
    small, large = figures["speed"]
    assert figures["speed"][small]["sets"]
    entry = figures["speed"][large]
    assert "sets" not in entry and set(entry["skipped"]) == set(figures["speed"][small]["sets"])
    assert all(f"speed/{large}/{name}" in figures["skipped"] for name in entry["skipped"])
    assert positive(entry["flop_scale_estimate"])


def test_precision_matrix_covers_every_cell_and_answers_agree(figures):
    precision = figures["precision"]
    assert precision["rows"] == ["bfloat16", "float16", "float32+autocast-bf16"] and precision["prompts"] > 0
    cells = precision["cells"]
    variants = {
        "bfloat16": {"bare", "bare_frozen", "lora_fp32", "lora_base_dtype"},
        "float16": {"bare", "bare_frozen", "lora_fp32", "lora_base_dtype"},
        "float32+autocast-bf16": {"bare", "bare_frozen", "lora_fp32"},
    }
    assert_full_precision_matrix(cells, variants)
    for c in cells:
        assert c["path_taken"] == c["path"], c
        assert positive(c["seconds"]) and positive(c["over_bare"])
        assert c["within_tolerance"] and c["max_logprob_diff"] <= c["tolerance"], c
    assert {c["adapter_dtype"] for c in cells if c["variant"] == "lora_fp32"} == {"float32"}
    assert {c["row"]: c["adapter_dtype"] for c in cells if c["variant"] == "lora_base_dtype"} == {
        "bfloat16": "bfloat16",
        "float16": "float16",
    }
    assert set(precision["before_over_bare"]) == set(variants)
    assert precision["all_within_tolerance"] and precision["all_paths_as_asked"]
