"""The history report: figures, per-probe table, early-stopping trade-off, and its error messages."""

from __future__ import annotations

import pytest

from fairness_callback.cli import main
from fairness_callback.history import HistoryWriter
from fairness_callback.report import Cost, load_probes, recommend_step, tradeoff_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = [0, 100, 200, 300]
GAPS = [0.10, 0.02, 0.05, 0.20]
LOSSES = [3.0, 2.5, 2.2, 2.1]


def probe_line(step: int, gap: float, *, loss: float | None = None, full: bool = True) -> dict:
    """A probe line with a known JSD-P gap; ``full`` adds the CI, per-seed values and pro/anti subsets."""
    record = {"event": "probe", "step": step, "jsdp/male": 0.3, "jsdp/female": 0.3 + gap, "jsdp/not_specified": 0.2,
              "jsdp/gap": gap, "ar/male": 2.0, "ar/female": 2.0 + 10 * gap, "ar/not_specified": 1.5, "ar/gap": 10 * gap,
              "mwu_p/jsdp": 1e-4 if gap > 0.04 else 0.3, "mwu_rbc/jsdp": 0.25, "mwu_p/ar": 0.5,
              "jsdp/not_specified/male": 0.12, "jsdp/not_specified/female": 0.08, "jsdp/gap_sudden": False}
    if loss is not None:
        record["eval_loss"] = loss
    if full:
        record.update({"jsdp/gap_ci_low": gap - 0.01, "jsdp/gap_ci_high": gap + 0.01,
                       "pro/jsdp/gap": gap * 1.5, "anti/jsdp/gap": gap * 0.5, "pro/jsdp/male": 0.3, "anti/jsdp/male": 0.3,
                       "pro/jsdp/female": 0.3 + 1.5 * gap, "anti/jsdp/female": 0.3 + 0.5 * gap})
        record["by_seed"] = {f"{m}/{g}": [record[f"{m}/{g}"] - 0.01, record[f"{m}/{g}"] + 0.01]
                             for m in ("ar", "jsdp") for g in ("male", "female", "not_specified")}
    return record


def write_history(path, lines: list[dict]) -> str:
    writer = HistoryWriter(path)
    for line in lines:
        writer.append(line)
    return str(path)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The known history (gaps 0.10, 0.02, 0.05, 0.20; losses 3.0, 2.5, 2.2, 2.1) and its report."""
    directory = tmp_path_factory.mktemp("known")
    lines = [probe_line(s, g, loss=l) for s, g, l in zip(STEPS, GAPS, LOSSES)]
    lines.append({"event": "stop", "step": 300, "reason": "gap_grew", "message": "stopping at step 300", "best_step": 100})
    history = write_history(directory / "history.jsonl", lines)
    return history, write_report(history, directory / "out", max_cost=0.4)


def test_tradeoff_numbers_by_hand(known):
    _, summary = known
    rows = {row.step: row for row in summary.tradeoff}
    assert rows[100].gain == pytest.approx(1 - 0.02 / 0.20)  # 0.9
    assert rows[100].cost == pytest.approx(2.5 - 2.1)  # 0.4
    assert rows[100].relative_cost == pytest.approx(100 * 0.4 / 2.1)
    assert [rows[s].gain for s in STEPS] == pytest.approx([0.5, 0.9, 0.75, 0.0])
    assert [rows[s].cost for s in STEPS] == pytest.approx([0.9, 0.4, 0.1, 0.0])
    assert "eval_loss" in summary.cost.description and not summary.cost.higher_is_better


@pytest.mark.parametrize("max_cost, step", [(0.4, 100), (1.0, 100), (0.1, 200), (0.05, 300), (-1.0, None)])
def test_recommended_step_for_a_max_cost(known, max_cost, step):
    assert recommend_step(known[1].tradeoff, max_cost) == step  # 0.1 = 2.2 - 2.1 up to rounding is within


def test_recommendation_in_summary_and_ties_go_to_the_earliest_step(known):
    assert known[1].recommended_step == 100 and known[1].fairest_step == 100
    probes, _ = load_probes(known[0])
    tied = [dict(p, **{"jsdp/gap": -g}) for p, g in zip(probes, [0.02, 0.02, 0.02, 0.20])]
    assert recommend_step(tradeoff_table(tied, "jsdp/gap", None)) == 0  # |gap| is what counts


def test_figures_and_markdown_are_written(known):
    _, summary = known
    assert set(summary.figures) == {"curves", "gap", "not_specified", "pro_anti"}
    for path in summary.figures.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
    text = summary.report.read_text()
    for needle in ("# Fairness report: history.jsonl", "4 probes, steps 0 to 300", "## Probes", "JSD-P gap [95% CI]",
                   "+0.0200 [+0.0100, +0.0300]", "0.0001 (r=+0.25)", "## Early-stopping trade-off",
                   "| **100** (recommended) | +0.0200 | 90.0% | +0.4 | +19.05% | yes |", "![gap](gap.png)",
                   "## Definitions", "1 - |gap(t)| / |gap(final)|", "value(t) - value(final)", "percentile bootstrap",
                   "Mann-Whitney", "k = 3", "previous 5 absolute changes", "ties go to the earliest step",
                   "Stop line at step 300", "| eval_loss |"):
        assert needle in text, needle


def test_cost_csv_higher_is_better_by_default(known, tmp_path):
    csv_path = tmp_path / "lambada.csv"
    csv_path.write_text("step,accuracy\n0,0.20\n100,0.30\n\n300,0.35\n999,0.5\n")
    probes, _ = load_probes(known[0])
    summary = write_report(known[0], tmp_path / "out", cost_csv=csv_path, max_cost=0.05)
    costs = {row.step: row.cost for row in summary.tradeoff}
    assert costs[0] == pytest.approx(0.15) and costs[100] == pytest.approx(0.05) and costs[300] == 0.0
    assert costs[200] is None  # not in the CSV: n/a
    assert summary.cost.higher_is_better and summary.recommended_step == 100
    assert any("1 step(s) of the cost source match no probe step" in note for note in summary.notes)
    text = summary.report.read_text()
    assert "value(final) - value(t)" in text and "| 200 | +0.0500 | 75.0% | n/a | n/a |  |" in text
    lower = tradeoff_table(probes, "jsdp/gap", Cost("csv", {0: 0.20, 300: 0.35}, higher_is_better=False))
    assert lower[0].cost == pytest.approx(-0.15)


def test_a_jump_is_flagged_sudden(tmp_path):
    gaps = [0.010, 0.012, 0.011, 0.013, 0.012, 0.014, 0.013, 0.200]
    history = write_history(tmp_path / "h.jsonl", [probe_line(100 * i, g, full=False) for i, g in enumerate(gaps)])
    summary = write_report(history, tmp_path / "out")
    assert summary.sudden_steps == [700]  # recomputed: the recorded flags all say False
    assert "| yes (recorded: no) |" in summary.report.read_text()


def test_old_history_without_seeds_ci_loss_or_subsets(tmp_path):
    lines = [probe_line(s, g, full=False) for s, g in zip(STEPS, GAPS)]
    for line in lines:
        del line["jsdp/not_specified/male"], line["jsdp/not_specified/female"]
    summary = write_report(write_history(tmp_path / "h.jsonl", lines), tmp_path / "out")
    assert set(summary.figures) == {"curves", "gap"}
    assert summary.cost is None and summary.recommended_step is None and summary.fairest_step == 100
    text = summary.report.read_text()
    assert "+0.1000 [n/a]" in text and "pro_anti.png skipped" in text and "not_specified.png skipped" in text
    assert "| 100 | +0.0200 | 90.0% | n/a | n/a |" in text


def test_zero_final_gap_leaves_the_gain_undefined(tmp_path):
    history = write_history(tmp_path / "h.jsonl", [probe_line(0, 0.1, full=False), probe_line(10, 0.0, full=False)])
    summary = write_report(history, tmp_path / "out")
    assert all(row.gain is None for row in summary.tradeoff)
    assert "The fairness gain is undefined: |gap(final)| is 0" in summary.report.read_text()


def test_cli_writes_the_report(known, tmp_path, capsys):
    assert main(["report", known[0], "--out", str(tmp_path), "--max-cost", "0.1", "--monitor", "ar/gap"]) == 0
    assert "recommended stop step for max cost 0.1: 200" in capsys.readouterr().out
    assert (tmp_path / "report.md").is_file()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "history {dir}/nope.jsonl: no such file"),
        ("empty", "history {dir}/empty.jsonl has no probe records"),
        ("bad_csv", "{dir}/bad.csv, line 3: expected 'step,score'"),
        ("repeated_csv", "{dir}/bad.csv, line 3: step 0 appears twice"),
        ("column", "--cost-column 'lambada' is not in {dir}/h.jsonl; available columns: eval_loss"),
        ("monitor", "--monitor 'jsdp/gapp' is not in {dir}/h.jsonl; its gap metrics: ar/gap, jsdp/gap"),
        ("no_cost", "--max-cost needs a cost"),
        ("missing_csv", "--cost-csv {dir}/nope.csv: no such file"),
        ("both", "give --cost-csv or --cost-column, not both"),
    ],
)
def test_cli_errors_name_the_file_or_option(tmp_path, case, message):
    history = write_history(tmp_path / "h.jsonl", [probe_line(0, 0.1, loss=2.0, full=False)])
    write_history(tmp_path / "empty.jsonl", [{"event": "stop", "step": 0}])
    write_history(tmp_path / "noloss.jsonl", [probe_line(0, 0.1, full=False)])
    (tmp_path / "bad.csv").write_text("step,score\n0,0.5\n100,oops\n" if case == "bad_csv" else "0,0.5\n\n0,0.6\n")
    argv = {
        "missing": [str(tmp_path / "nope.jsonl")],
        "empty": [str(tmp_path / "empty.jsonl")],
        "bad_csv": [history, "--cost-csv", str(tmp_path / "bad.csv")],
        "repeated_csv": [history, "--cost-csv", str(tmp_path / "bad.csv")],
        "column": [history, "--cost-column", "lambada"],
        "monitor": [history, "--monitor", "jsdp/gapp"],
        "no_cost": [str(tmp_path / "noloss.jsonl"), "--max-cost", "0.1"],
        "missing_csv": [history, "--cost-csv", str(tmp_path / "nope.csv")],
        "both": [history, "--cost-csv", str(tmp_path / "bad.csv"), "--cost-column", "eval_loss"],
    }[case]
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *argv, "--out", str(tmp_path / "out")])
    text = str(exit_info.value.code)
    assert text.startswith("fairness-callback: error: ") and message.format(dir=tmp_path) in text
