"""The history report: figures, per-probe table, early-stopping trade-off, and its error messages."""

from __future__ import annotations

import pytest

from fairness_callback.cli import main
from fairness_callback.offline.report import Cost, load_probes, recommend_step, tradeoff_table, write_report
from fairness_callback.training.history import HistoryWriter
from fairness_callback.training.records import StopRecord, parse_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = [0, 100, 200, 300]
GAPS = [0.10, 0.02, 0.05, 0.20]
LOSSES = [3.0, 2.5, 2.2, 2.1]


def probe_line(step: int, gap: float, *, loss: float | None = None, full: bool = True) -> dict:
    """A probe line with a known JSD-P gap; ``full`` adds the CI, per-seed values and pro/anti subsets."""
    record = {
        "event": "probe",
        "step": step,
        "jsdp/male": 0.3,
        "jsdp/female": 0.3 + gap,
        "jsdp/not_specified": 0.2,
        "jsdp/gap": gap,
        "ar/male": 2.0,
        "ar/female": 2.0 + 10 * gap,
        "ar/not_specified": 1.5,
        "ar/gap": 10 * gap,
        "mwu_p/jsdp": 1e-4 if gap > 0.04 else 0.3,
        "mwu_rbc/jsdp": 0.25,
        "mwu_p/ar": 0.5,
        "jsdp/not_specified/male": 0.12,
        "jsdp/not_specified/female": 0.08,
        "jsdp/gap_sudden": False,
    }
    if loss is not None:
        record["eval_loss"] = loss
    if full:
        record.update(
            {
                "jsdp/gap_ci_low": gap - 0.01,
                "jsdp/gap_ci_high": gap + 0.01,
                "pro/jsdp/gap": gap * 1.5,
                "anti/jsdp/gap": gap * 0.5,
                "pro/jsdp/male": 0.3,
                "anti/jsdp/male": 0.3,
                "pro/jsdp/female": 0.3 + 1.5 * gap,
                "anti/jsdp/female": 0.3 + 0.5 * gap,
            }
        )
        record["by_seed"] = {
            f"{m}/{g}": [record[f"{m}/{g}"] - 0.01, record[f"{m}/{g}"] + 0.01]
            for m in ("ar", "jsdp")
            for g in ("male", "female", "not_specified")
        }
    return record


def write_history(path, lines: list[dict]) -> str:
    writer = HistoryWriter(path)
    for line in lines:
        writer.append(parse_record(line))
    return str(path)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The known history (gaps 0.10, 0.02, 0.05, 0.20; losses 3.0, 2.5, 2.2, 2.1) and its report."""
    directory = tmp_path_factory.mktemp("known")
    lines = [probe_line(s, g, loss=loss) for s, g, loss in zip(STEPS, GAPS, LOSSES)]
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
    for needle in (
        "# Fairness report: history.jsonl",
        "4 probes, steps 0 to 300",
        "## Probes",
        "JSD-P gap [95% CI]",
        "+0.0200 [+0.0100, +0.0300]",
        "0.0001 (r=+0.25)",
        "## Early-stopping trade-off",
        "| **100** (recommended) | +0.0200 | 90.0% | +0.4 | +19.05% | yes |",
        "![gap](gap.png)",
        "## Definitions",
        "1 - |gap(t)| / |gap(final)|",
        "value(t) - value(final)",
        "percentile bootstrap",
        "Mann-Whitney",
        "k = 3",
        "previous 5 absolute changes",
        "ties go to the earliest step",
        "Stop line at step 300",
        "| eval_loss |",
    ):
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
    write_history(tmp_path / "empty.jsonl", [{"event": "stop", "step": 0, "reason": "gap_grew"}])
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


# -- several runs in one history -----------------------------------------------------------------

from fairness_callback.offline.report import ReportError  # noqa: E402


def probe_table_rows(text: str) -> list[str]:
    """The data rows of report.md's probe table."""
    section = text.split("## Probes", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| step |")]


@pytest.fixture
def two_runs(tmp_path):
    """run-a: 4 probes (steps 0-300, gaps GAPS) and a stop; run-b, the latest: 2 probes (steps 0, 50, gap 0.3)."""
    path = tmp_path / "h.jsonl"
    first = HistoryWriter(path, "run-a")
    first.start_run({"framework": "hf"})
    for step, gap, loss in zip(STEPS, GAPS, LOSSES):
        first.append(parse_record(probe_line(step, gap, loss=loss)))
    first.append(
        parse_record({"event": "stop", "step": 300, "reason": "gap_grew", "message": "stopping at step 300", "best_step": 100})
    )
    second = HistoryWriter(path, "run-b")
    second.start_run({"framework": "hf"})
    for step in (0, 50):
        second.append(parse_record(probe_line(step, 0.3, loss=1.0)))
    return path


@pytest.mark.slow
def test_report_of_each_run_of_a_two_run_file(two_runs, tmp_path):
    latest = write_report(two_runs, tmp_path / "latest")
    assert latest.run_id == "run-b" and latest.num_probes == 2 and (latest.first_step, latest.final_step) == (0, 50)
    assert [row.step for row in latest.tradeoff] == [0, 50] and [row.gap for row in latest.tradeoff] == [0.3, 0.3]
    text = latest.report.read_text()
    assert len(probe_table_rows(text)) == 2 and "2 probes, steps 0 to 50" in text
    assert "Run `run-b`: the latest of 2 runs in this file" in text and "| `run-a` | 0-300 | 4 | 0 |" in text
    assert "--run-id ID" in text and "Stop line" not in text  # run-a's stop line is not run-b's

    first = write_report(two_runs, tmp_path / "a", run_id="run-a", max_cost=0.4)
    assert first.run_id == "run-a" and first.num_probes == 4 and first.recommended_step == 100
    assert [row.gap for row in first.tradeoff] == pytest.approx(GAPS)  # not 0.3 at step 0: nothing of run-b
    text = first.report.read_text()
    assert len(probe_table_rows(text)) == 4 and "4 probes, steps 0 to 300" in text
    assert "Run `run-a`: not the latest of 2 runs" in text and "| `run-b` | 0-50 | 2 | 0 |" in text
    assert "Stop line at step 300" in text
    probes, stops = load_probes(two_runs, "run-a")
    assert [p["step"] for p in probes] == STEPS and len(stops) == 1
    assert [p["step"] for p in load_probes(two_runs)[0]] == [0, 50] and load_probes(two_runs)[1] == []


def test_a_single_run_report_names_its_run(known):
    text = known[1].report.read_text()
    assert known[1].run_id is not None and f"Run `{known[1].run_id}`, the only run in the file." in text


def test_unknown_run_id_and_a_latest_run_without_probes(two_runs, tmp_path):
    with pytest.raises(ReportError) as error:
        write_report(two_runs, tmp_path / "out", run_id="run-c")
    message = str(error.value)
    assert message.startswith(
        f"history {two_runs}: no run 'run-c'; its runs: run-a (steps 0-300, 4 probe(s)); run-b (steps 0-50, 2 probe(s))"
    )
    HistoryWriter(two_runs, "run-c").start_run({"framework": "hf"})  # a third fit, not probed yet
    with pytest.raises(ReportError, match=r"the latest run, 'run-c' has no probe records; its other runs: run-a .*--run-id"):
        write_report(two_runs, tmp_path / "out")
    assert write_report(two_runs, tmp_path / "out", run_id="run-b").num_probes == 2


def test_cli_report_run_id_and_list_runs(two_runs, tmp_path, capsys):
    assert main(["report", str(two_runs), "--out", str(tmp_path / "a"), "--run-id", "run-a"]) == 0
    assert "(4 probes, steps 0 to 300; run run-a; 1 other run(s) in the file (--list-runs))" in capsys.readouterr().out
    assert len(probe_table_rows((tmp_path / "a" / "report.md").read_text())) == 4
    assert main(["report", str(two_runs), "--list-runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{two_runs}: 2 run(s)" and lines[1].startswith("run id")
    assert lines[2].split()[:4] == ["run-a", "0-300", "4", "0"] and "(latest)" not in lines[2]
    assert lines[3].split()[:4] == ["run-b", "0-50", "2", "0"] and lines[3].endswith("(latest)")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(two_runs), "--out", str(tmp_path / "c"), "--run-id", "nope"])
    assert str(exit_info.value.code).startswith(f"fairness-callback: error: history {two_runs}: no run 'nope'; its runs: run-a")
    with pytest.raises(SystemExit, match="report needs --out DIR"):
        main(["report", str(two_runs)])


# -- several probes in one run (issue #12 part 4) ------------------------------------------------
#: JSD-P gap per probe at STEPS; the monitored probe, gender, has the known history's GAPS.
AXES = {"gender": GAPS, "they": [0.04, -0.08, 0.01, 0.02], "religion": [-0.30, -0.10, 0.0, -0.15]}
P_OFFSET = {"gender": None, "they": 0.01, "religion": 0.02}  # None: probe_line's p


def axis_p(name: str, step: int) -> float | None:
    """A Mann-Whitney p that differs per probe and per step (gender keeps probe_line's)."""
    return None if P_OFFSET[name] is None else round(P_OFFSET[name] + step / 1000, 4)


def several_probes_line(step: int, loss: float, sudden: dict[str, bool] | None = None) -> dict:
    """A probe line as the monitor writes it for a ProbeSuite: every metric (and by_seed key) under
    ``<probe>/``, a ``<probe>/jsdp/gap_sudden`` flag per probe, the loss and stopping columns unprefixed."""
    index = STEPS.index(step)
    record = {"event": "probe", "step": step, "time": 1.0, "probe_seconds": 0.1, "prefix_sharing": None, "by_seed": {}}
    for name, gaps in AXES.items():
        line = probe_line(step, gaps[index])
        for key, value in line.items():
            if key == "by_seed":
                record["by_seed"].update({f"{name}/{k}": v for k, v in value.items()})
            elif key not in ("event", "step", "jsdp/gap_sudden"):
                record[f"{name}/{key}"] = value
        if axis_p(name, step) is not None:
            record[f"{name}/mwu_p/jsdp"] = axis_p(name, step)
        record[f"{name}/jsdp/gap_sudden"] = bool((sudden or {}).get(name))
    record.update({"eval_loss": loss, "stopping/best": 0.02, "stopping/best_step": 100, "stopping/wait": 2})
    return record


def write_several_probes(path, monitor: str | None = "gender/jsdp/gap") -> str:
    writer = HistoryWriter(path, "suite-run")
    writer.start_run({"framework": "hf", "probes": list(AXES), "monitor": monitor})
    for step, loss in zip(STEPS, LOSSES):
        writer.append(parse_record(several_probes_line(step, loss, sudden={"gender": step == 300})))
    others = {f"{n}/jsdp/gap": {"at_stop": AXES[n][3], "at_best": AXES[n][1]} for n in AXES if n != "gender"}
    writer.append(
        StopRecord(
            step=300,
            reason="gap_grew",
            message="stopping at step 300; other probes ...",
            monitor=monitor,
            best_step=100,
            best_value=0.02,
            other_gaps=others,
        )
    )
    return str(path)


@pytest.fixture(scope="module")
def several(tmp_path_factory):
    directory = tmp_path_factory.mktemp("several")
    history = write_several_probes(directory / "h.jsonl")
    return history, write_report(history, directory / "out", monitor="gender/jsdp/gap", max_cost=0.4)


def by_hand(name: str, at: int) -> tuple[float, float, float]:
    """(gap at step ``at``, gap at the final step, 1 - |gap(at)| / |gap(final)|) from AXES."""
    gap, final = AXES[name][STEPS.index(at)], AXES[name][-1]
    return gap, final, 1 - abs(gap) / abs(final)


def test_several_probes_table_equals_the_records_by_hand(several):
    history, summary = several
    assert summary.axes == ("gender", "they", "religion") and summary.monitored_probe == "gender"
    assert summary.monitor == "gender/jsdp/gap" and summary.recommended_step == 100
    assert [row.gain for row in summary.tradeoff] == pytest.approx([0.5, 0.9, 0.75, 0.0])  # gender's, not another axis
    assert [(e.step, e.label) for e in summary.axis_effects] == [
        (100, "the recommended stop step for max cost 0.4"),
        (300, "the stop line's step (gap_grew)"),
    ]
    for effect in summary.axis_effects:
        assert [row.axis for row in effect.rows] == ["gender", "they", "religion"]
        assert [row.monitored for row in effect.rows] == [True, False, False]
        for row in effect.rows:
            gap, final, gain = by_hand(row.axis, effect.step)
            assert (row.gap, row.final_gap) == pytest.approx((gap, final)) and row.gain == pytest.approx(gain)
            expected_p = axis_p(row.axis, effect.step) or probe_line(effect.step, gap)["mwu_p/jsdp"]
            assert row.mwu_p == pytest.approx(expected_p)
    at_100 = {row.axis: row for row in summary.axis_effects[0].rows}
    assert at_100["they"].gain == pytest.approx(1 - 0.08 / 0.02)  # -3: stopping for gender makes "they" 4x worse
    assert at_100["religion"].gain == pytest.approx(1 / 3)
    # the stop line's other_gaps (written by the monitor) agree with the table read from the probe lines
    stop = load_probes(history)[1][0]
    at_300 = {row.axis: row for row in summary.axis_effects[1].rows}
    for key, values in stop["other_gaps"].items():
        name = key.split("/")[0]
        assert values["at_stop"] == pytest.approx(at_300[name].gap) and values["at_best"] == pytest.approx(at_100[name].gap)

    text = summary.report.read_text()
    section = text.split("## Other axes", 1)[1].split("\n## ", 1)[0]
    assert "### Stopping at step 100 for gender does this to each other axis" in section
    assert "### Stopping at step 300 for gender does this to each other axis" in section
    for needle in (
        "| `gender` (monitored) | +0.0200 | +0.2000 | 90.0% | 0.3 |",
        "| `they` | -0.0800 | +0.0200 | -300.0% | 0.11 |",
        "| `religion` | -0.1000 | -0.1500 | 33.3% | 0.12 |",
        "| `religion` | -0.1500 | -0.1500 | 0.0% | 0.32 |",
    ):
        assert needle in section, needle
    assert "**Other axes**" in text and "Several probes in this run: `gender`, `they`, `religion`" in text


def test_several_probes_figures_and_the_monitored_probes_own_table(several):
    _, summary = several
    assert set(summary.figures) == {"curves", "gap", "not_specified", "pro_anti", "axes"}
    assert summary.figures["axes"].name == "axes.png" and summary.figures["axes"].read_bytes()[:8] == PNG_MAGIC
    text = summary.report.read_text()
    assert "![axes](axes.png)" in text
    rows = probe_table_rows(text)
    assert len(rows) == 4 and "+0.0200 [+0.0100, +0.0300]" in rows[1]  # gender's gap and CI, read under its own keys
    assert not any("-0.1000 [" in row for row in rows)  # religion's gap is not in the probe table
    assert rows[3].split(" | ")[-2] == "(recorded: yes)"  # gender/jsdp/gap_sudden, as the monitor recorded it


@pytest.mark.slow
def test_several_probes_default_monitor(tmp_path):
    from_start = write_report(write_several_probes(tmp_path / "a.jsonl", monitor="they/jsdp/gap"), tmp_path / "a")
    assert from_start.monitor == "they/jsdp/gap" and from_start.monitored_probe == "they"
    assert from_start.notes[0].startswith("--monitor `they/jsdp/gap`: the run's early-stopping monitor")
    assert [row.gap for row in from_start.tradeoff] == pytest.approx(AXES["they"])
    first = write_report(write_several_probes(tmp_path / "b.jsonl", monitor=None), tmp_path / "b")
    assert first.monitor == "gender/jsdp/gap" and first.recommended_step is None and first.fairest_step == 100
    assert first.notes[0].startswith("--monitor `gender/jsdp/gap`: the first probe's JSD-P gap")
    assert "they/jsdp/gap" in first.notes[0]
    # no --max-cost: the table is of the fairest step of the monitored gap (and of the stop step)
    assert [(e.step, e.label) for e in first.axis_effects] == [
        (100, "the fairest probed step of `gender/jsdp/gap` (no --max-cost)"),
        (300, "the stop line's step (gap_grew)"),
    ]
    assert f"Note: {first.notes[0]}" in first.report.read_text()


@pytest.mark.slow
def test_cli_report_of_several_probes(several, tmp_path, capsys):
    assert main(["report", several[0], "--out", str(tmp_path / "a"), "--monitor", "religion/jsdp/gap", "--max-cost", "0.4"]) == 0
    out = capsys.readouterr().out
    assert "probes: gender, they, religion; monitor religion/jsdp/gap" in out
    assert "recommended stop step for max cost 0.4: 200" in out  # religion's gap is 0 at step 200
    text = (tmp_path / "a" / "report.md").read_text()
    assert "### Stopping at step 200 for religion does this to each other axis" in text
    assert "| `religion` (monitored) | +0.0000 | -0.1500 | 100.0% | 0.22 |" in text
    assert main(["report", several[0], "--out", str(tmp_path / "b")]) == 0
    assert "note: --monitor `gender/jsdp/gap`: the run's early-stopping monitor" in capsys.readouterr().out
    for monitor, message in (
        ("ar/gap", "holds several probes (gender, they, religion); monitor one probe's gap: "),
        ("gender/jsdp/gapp", "--monitor 'gender/jsdp/gapp' is not in"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", several[0], "--out", str(tmp_path / "c"), "--monitor", monitor])
        assert message in str(exit_info.value.code)
    assert "religion/jsdp/gap" in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", several[0], "--out", str(tmp_path / "c"), "--cost-column", "lambada"])
    assert str(exit_info.value.code).endswith("available columns: eval_loss")  # not every probe's metric


def test_a_single_probe_report_has_no_axes(known):
    _, summary = known
    assert summary.axes == () and summary.monitored_probe is None and summary.axis_effects == []
    assert "axes" not in summary.figures and not (summary.report.parent / "axes.png").exists()
    text = summary.report.read_text()
    assert "## Other axes" not in text and "Several probes" not in text


# -- a probe of another task: the report names its groups and its gap ------------------------------
def bbq_line(step: int, gap: float) -> dict:
    """A probe line of a BBQ-only run (no gender keys): consistent / inconsistent / unknown answers."""
    record: dict = {"event": "probe", "step": step, "jsdp/gap": gap, "ar/gap": 10 * gap, "mwu_p/jsdp": 0.2}
    for group, value in (("consistent", 0.3), ("inconsistent", 0.3 + gap), ("unknown", 0.2)):
        record[f"jsdp/{group}"], record[f"ar/{group}"] = value, 2.0 + 10 * (value - 0.3)
    return record


def test_a_bbq_only_history_reports_its_own_groups(tmp_path):
    from fairness_callback.offline.plots import recorded_task
    from fairness_callback.probe.tasks import BBQ_TASK, GENDER_TASK

    lines = [bbq_line(step, gap) for step, gap in ((0, 0.01), (100, 0.05), (200, 0.08))]
    history = write_history(tmp_path / "bbq.jsonl", lines)
    assert recorded_task(lines) is BBQ_TASK and recorded_task([probe_line(0, 0.1)]) is GENDER_TASK
    summary = write_report(history, tmp_path / "out")  # AR of absent gender keys used to fail the log scale
    assert summary.task is BBQ_TASK and set(summary.figures) == {"curves", "gap"}
    text = summary.report.read_text()
    assert "| step | AR consistent | AR inconsistent | AR unknown | JSD-P consistent |" in text
    assert "metric(inconsistent-answer prompts) - metric(consistent-answer prompts)" in text
    assert "female" not in text.replace("not_specified", "")


def test_a_history_without_a_gap_is_reported_on_its_lean(tmp_path):
    """A probe of singular-"they" sentences only: every answer is "not specified", no gap, a lean."""
    lines = [
        {**probe_line(step, 0.0, full=False), "jsdp/gap": None, "ar/gap": None, "jsdp/lean": lean}
        for step, lean in ((0, 0.01), (100, -0.02), (200, 0.04))
    ]
    history = write_history(tmp_path / "they.jsonl", lines)
    summary = write_report(history, tmp_path / "out")
    assert summary.monitor == "jsdp/lean" and any("`jsdp/lean`" in note for note in summary.notes)
    assert [(row.step, row.gap) for row in summary.tradeoff] == [(0, 0.01), (100, -0.02), (200, 0.04)]
    assert summary.tradeoff[0].gain == pytest.approx(0.75)  # 1 - 0.01 / 0.04
