"""The command line's table of probe-set options: the package's own, one registered by a third party
(shown in ``probe --help`` and loaded), the deprecated ``register_probe_set(cli=...)``, and its errors."""

from __future__ import annotations

import json

import pytest

from fairness_callback.cli import build_parser, main, offered_sets
from fairness_callback.cli_options import (
    BUILTIN_CLI_OPTIONS,
    CliOption,
    cli_option,
    cli_options,
    register_cli_option,
    unregister_cli_option,
)
from fairness_callback.data import ProbeSentence, ProbeSet, UnknownProbeSetError, register_probe_set, unregister_probe_set
from fairness_callback.probe.suite import axis_probe_sets

SENTENCES = (
    ProbeSentence(
        "tp/1",
        "The developer argued with the designer because he did not like the design.",
        "developer",
        "designer",
        ("he",),
        "male",
    ),
    ProbeSentence("tp/2", "The nurse thanked the janitor because she had been helped.", "nurse", "janitor", ("she",), "female"),
    ProbeSentence("tp/3", "The manager called the cashier because she was late.", "manager", "cashier", ("she",), "female"),
)


@pytest.fixture
def third_party_sets():
    """Two sets of a third party, each with a command-line option: one that replaces the gender probe
    (a switch) and one probed beside it, with a list option of its loader."""

    @register_probe_set("tp-gender", task="gender")
    def gender_set() -> ProbeSet:
        return ProbeSet(SENTENCES[:2], name="tp-gender")

    @register_probe_set("tp-axis", task="gender", probe_name="tpaxis")
    def axis_set(ids: list[str] | None = None) -> ProbeSet:
        return ProbeSet([s for s in SENTENCES if ids is None or s.sentence_id in ids], name="tp-axis")

    register_cli_option("tp-gender", CliOption("tpgender", gender_help="the third party's sentences as the gender probe"))
    register_cli_option(
        "tp-axis",
        CliOption("tpaxis", axis_help="also probe the third party's sentences", lists=(("ids", "A,B", "sentence ids"),)),
    )
    yield
    for name in ("tp-gender", "tp-axis"):
        unregister_cli_option(name)
        unregister_probe_set(name)


def test_the_packages_sets_have_their_options_in_registration_order():
    assert [(spec.name, option.flag) for spec, option in cli_options()][:4] == [
        ("winobias", "winobias"),
        ("winogender", "winogender"),
        ("builtin-they", "they"),
        ("bbq", "bbq"),
    ]
    assert {spec.name: option for spec, option in cli_options()[:4]} == BUILTIN_CLI_OPTIONS
    assert cli_option("bbq").list_keys == ("bbq_categories",) and cli_option("builtin") is None
    assert [(spec.name, option.flag) for spec, option, _ in offered_sets("demo")] == [
        ("winogender", "winogender"),
        ("builtin-they", "they"),
        ("bbq", "bbq"),
    ]


def test_a_third_party_set_is_in_probe_help_and_is_loaded(third_party_sets, saved_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert "--tpgender" in shown and "--tpaxis" in shown and "--tpaxis-ids A,B" in shown and "--bbq-categories" in shown
    assert "--tpaxis" not in str(build_parser()._subparsers._group_actions[0].choices["demo"].format_help())  # type: ignore[union-attr]
    out = tmp_path / "m.json"
    argv = [
        "probe",
        "--model",
        str(saved_model),
        "--seeds",
        "0",
        "--tpgender",
        "--tpaxis",
        "--tpaxis-ids",
        "tp/3",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "probe 'gender': " in printed and "4 prompts from 2 sentences (tp-gender)" in printed
    assert "probe 'tpaxis': " in printed and "2 prompts from 1 sentences (tp-axis)" in printed
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["gender/n/male"] == 1 and metrics["tpaxis/n/female"] == 1
    with pytest.raises(SystemExit, match="--tpaxis-ids needs --tpaxis$"):
        main(["probe", "--model", str(saved_model), "--tpaxis-ids", "tp/3"])
    with pytest.raises(SystemExit, match="--winogender and --tpgender both name the gender probe set"):
        main(["probe", "--model", str(saved_model), "--winogender", str(tmp_path), "--tpgender"])


def test_registering_an_option_checks_it(third_party_sets):
    with pytest.raises(UnknownProbeSetError, match="unknown probe set 'tp-none'"):
        register_cli_option("tp-none", CliOption("tpnone", axis_help="x"))
    with pytest.raises(ValueError, match=r"has a command-line option already \(--tpaxis\)"):
        register_cli_option("tp-axis", CliOption("tpother", axis_help="x"))
    register_probe_set("tp-more", lambda: ProbeSet(SENTENCES), task="they")
    try:
        with pytest.raises(ValueError, match=r"option\(s\) \['they'\] belong to 'builtin-they'"):
            register_cli_option("tp-more", CliOption("they", axis_help="again"))
        with pytest.raises(ValueError, match=r"option\(s\) \['tpaxis_ids'\] belong to 'tp-axis'"):
            register_cli_option("tp-more", CliOption("tpaxis_ids", axis_help="again"))
        with pytest.raises(ValueError, match="only a 'gender' set can replace the gender probe"):
            register_cli_option("tp-more", CliOption("tpmore", gender_help="x"))
        with pytest.raises(ValueError, match=r"its loader takes no option\(s\) \['ids'\]"):
            register_cli_option("tp-more", CliOption("tpmore", axis_help="x", lists=(("ids", "A,B", "ids"),)))
        with pytest.raises(TypeError, match="is a CliOption"):
            register_cli_option("tp-more", {"flag": "tpmore"})  # type: ignore[arg-type]
        assert cli_option("tp-more") is None
    finally:
        unregister_probe_set("tp-more")
    with pytest.raises(ValueError, match="Python identifiers"):
        CliOption("tp-more", axis_help="x")
    with pytest.raises(ValueError, match="give gender_help, axis_help or both"):
        CliOption("tpmore")


def test_an_option_of_a_set_registered_anew_is_not_kept():
    register_probe_set("tp-again", lambda: ProbeSet(SENTENCES), task="gender")
    register_cli_option("tp-again", CliOption("tpagain", axis_help="x"))
    unregister_probe_set("tp-again")
    assert "tp-again" not in [spec.name for spec, _ in cli_options()]
    register_probe_set("tp-again", lambda: ProbeSet(SENTENCES), task="gender")
    try:
        assert cli_option("tp-again") is None
        register_cli_option("tp-again", CliOption("tpagain", axis_help="y"))
        assert cli_option("tp-again").axis_help == "y"
    finally:
        unregister_cli_option("tp-again")
        unregister_probe_set("tp-again")


def test_the_deprecated_cli_keyword_still_gives_an_option(capsys):
    with pytest.warns(DeprecationWarning, match=r"register_probe_set\(cli=...\) is deprecated.*register_cli_option"):
        register_probe_set("tp-old", lambda: ProbeSet(SENTENCES), task="gender", cli=CliOption("tpold", axis_help="the old way"))
    try:
        assert cli_option("tp-old") == CliOption("tpold", axis_help="the old way")
        assert list(axis_probe_sets(tpold=True)) == ["tpold"]  # named by its flag, as it used to be
        with pytest.raises(SystemExit):
            main(["replay", "--help"])
        assert "--tpold" in capsys.readouterr().out
    finally:
        unregister_probe_set("tp-old")
    assert "tp-old" not in [spec.name for spec, _ in cli_options()]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="probe name 'they' belongs to 'builtin-they'"):
        register_probe_set("tp-old", lambda: ProbeSet(SENTENCES), task="gender", cli=CliOption("they", axis_help="clash"))
    with pytest.warns(DeprecationWarning):
        register_probe_set(
            "tp-old", lambda: ProbeSet(SENTENCES), task="gender", probe_name="tpold", cli=CliOption("they", axis_help="x")
        )
    try:  # the command line checks an option given the old way when it reads it
        with pytest.raises(ValueError, match=r"option\(s\) \['they'\] belong to 'builtin-they'"):
            cli_options()
    finally:
        unregister_probe_set("tp-old")


def test_the_data_layer_no_longer_has_the_cli_option():
    with pytest.raises(ImportError, match=r"moved to fairness_callback\.cli_options\.CliOption"):
        from fairness_callback.data import CliOption  # noqa: F401
