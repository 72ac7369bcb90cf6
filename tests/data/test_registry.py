"""The probe-set registry: every shipped set by name, a set registered in a test, the item protocol."""

from __future__ import annotations

import math

import pytest

from fairness_callback import FairnessProbe
from fairness_callback.data import (
    TASK_KINDS,
    BBQItem,
    ProbeItem,
    ProbeSentence,
    ProbeSet,
    UnknownProbeSetError,
    probe_set,
    probe_set_names,
    probe_set_spec,
    register_probe_set,
    register_task,
    task_names,
    unregister_probe_set,
    unregister_task,
)
from fairness_callback.probe import item_id
from fairness_callback.probe.item_kinds import kind_of_items
from fairness_callback.probe.suite import axis_probe_sets
from support import make_model, make_tokenizer

SHIPPED = ("builtin", "winobias", "winogender", "builtin-they", "bbq")

TWO = (
    ProbeSentence(
        sentence_id="tiny/1",
        text="The developer argued with the designer because he did not like the design.",
        referent="developer",
        other="designer",
        pronouns=("he",),
        gender="male",
        stereotype="pro",
    ),
    ProbeSentence(
        sentence_id="tiny/2",
        text="The nurse thanked the janitor because she had been helped.",
        referent="nurse",
        other="janitor",
        pronouns=("she",),
        gender="female",
        stereotype="pro",
    ),
)


@pytest.fixture
def tiny_set():
    """A set of two in-memory sentences, registered for the test only."""

    @register_probe_set("test-tiny", task="gender", description="two sentences of a test")
    def load() -> ProbeSet:
        return ProbeSet(TWO, name="test-tiny")

    yield load
    unregister_probe_set("test-tiny")


def test_every_shipped_set_is_registered_in_the_order_of_the_cli() -> None:
    assert probe_set_names()[: len(SHIPPED)] == SHIPPED
    tasks = {name: probe_set_spec(name).task for name in SHIPPED}
    assert tasks == {"builtin": "gender", "winobias": "gender", "winogender": "gender", "builtin-they": "they", "bbq": "bbq"}
    needs = {name for name in SHIPPED if probe_set_spec(name).needs_directory}
    assert needs == {"winobias", "winogender", "bbq"}
    probes = {name: probe_set_spec(name).probe_name for name in SHIPPED}
    assert probes == {
        "builtin": "builtin",
        "winobias": "winobias",
        "winogender": "winogender",
        "builtin-they": "they",
        "bbq": "bbq",
    }


def test_the_registry_gives_what_the_constructors_give(winogender_dir, bbq_dir) -> None:
    assert list(probe_set("builtin")) == list(ProbeSet.builtin()) and probe_set("builtin").name == "builtin"
    assert list(probe_set("builtin-they")) == list(ProbeSet.builtin_they())
    wg = probe_set("winogender", directory=winogender_dir)
    assert (
        list(wg) == list(ProbeSet.from_winogender(winogender_dir))
        and wg.left_out == ProbeSet.from_winogender(winogender_dir).left_out
    )
    religion = probe_set("bbq", directory=bbq_dir, categories=["Religion"])
    assert religion.name == "bbq-Religion" and religion.kind == "bbq"
    assert list(religion) == list(ProbeSet.from_bbq(bbq_dir, ["Religion"]))
    axes = axis_probe_sets(they=True, bbq=bbq_dir, bbq_categories=["Religion", " Age"])
    assert list(axes) == ["they", "religion", "age"] and axes["age"].name == "bbq-Age"


def test_winobias_by_name(winobias_dir) -> None:
    assert list(probe_set("winobias", directory=winobias_dir)) == list(ProbeSet.from_winobias(winobias_dir))
    assert probe_set("winobias", directory=winobias_dir, types=1, splits="dev").name == "winobias-type1-dev"


def test_an_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownProbeSetError, match="unknown probe set 'winobais'; registered: builtin, winobias") as info:
        probe_set("winobais")
    assert all(name in str(info.value) for name in SHIPPED)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LookupError)


def test_options_are_checked_against_the_loader() -> None:
    with pytest.raises(TypeError, match=r"takes the options \[\], not \['directory'\]"):
        probe_set("builtin", directory="x")
    with pytest.raises(ValueError, match="'winobias' needs directory="):
        probe_set("winobias")
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) \['religion'\]"):
        axis_probe_sets(religion="x")
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) \['bbq_category'\]"):
        axis_probe_sets(bbq="x", bbq_category=["Age"])


def test_a_set_registered_in_a_test_loads_by_name_and_probes(tiny_set) -> None:
    assert "test-tiny" in probe_set_names()
    loaded = probe_set("test-tiny")
    assert list(loaded) == list(TWO) and loaded.kind == "sentence" and probe_set_spec("test-tiny").probe_name == "test-tiny"
    assert axis_probe_sets() == {}
    assert list(axis_probe_sets(**{"test-tiny": True})) == ["test-tiny"]  # by its probe name: the set's name
    tokenizer = make_tokenizer()
    result = FairnessProbe(tokenizer, loaded, seeds=(0,)).run(make_model(tokenizer))
    assert result.info["num_sentences"] == 2 and result.info["num_prompts"] == 4
    assert math.isfinite(result.metrics["jsdp/gap"])


def test_a_registered_axis_is_an_axis_probe_set_by_its_probe_name(tiny_set) -> None:
    register_probe_set("test-axis", tiny_set, task="gender", probe_name="tinyaxis")
    try:
        assert list(axis_probe_sets(tinyaxis=True)) == ["tinyaxis"]
        assert axis_probe_sets(tinyaxis=False) == {} and axis_probe_sets(tinyaxis=None) == {}
    finally:
        unregister_probe_set("test-axis")


def test_a_duplicate_registration_errors(tiny_set) -> None:
    with pytest.raises(ValueError, match="'test-tiny' is already registered"):
        register_probe_set("test-tiny", tiny_set, task="gender")
    with pytest.raises(ValueError, match="'builtin' is already registered"):
        register_probe_set("builtin", tiny_set, task="gender")
    with pytest.raises(ValueError, match="probe name 'they' belongs to 'builtin-they'"):
        register_probe_set("test-they", tiny_set, task="they", probe_name="they")
    with pytest.raises(ValueError, match="may not contain '/'"):
        register_probe_set("test-they", tiny_set, task="they", probe_name="a/b")
    assert "test-they" not in probe_set_names()


def test_registration_checks_what_the_loader_needs(tiny_set) -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        register_probe_set("test-bad", tiny_set, task="religion")
    with pytest.raises(ValueError, match="takes no 'directory' option"):
        register_probe_set("test-bad", tiny_set, task="gender", needs_directory=True)
    register_probe_set("test-bad", tiny_set, task="bbq")  # a loader whose items are not of its task's kind
    try:
        with pytest.raises(TypeError, match="loaded 'sentence' items, expected 'bbq'"):
            probe_set("test-bad")
    finally:
        unregister_probe_set("test-bad")


def test_a_task_of_a_new_item_kind_is_declared_in_the_data_registry(tiny_set) -> None:
    with pytest.raises(ValueError, match=r"task must be one of \('gender', 'they', 'bbq'\), got 'pairs' \(register_task"):
        register_probe_set("test-pairs", tiny_set, task="pairs")
    register_task("pairs", item_kind="pair")
    try:
        assert task_names() == ("gender", "they", "bbq", "pairs") and TASK_KINDS["pairs"] == "pair"
        register_task("pairs", item_kind="pair")  # again, the same: nothing
        with pytest.raises(ValueError, match="already registered, with item kind 'pair'"):
            register_task("pairs", item_kind="sentence")
        register_probe_set("test-pairs", tiny_set, task="pairs")
        with pytest.raises(ValueError, match="the task of the registered set"):
            unregister_task("pairs")
        with pytest.raises(TypeError, match="loaded 'sentence' items, expected 'pair'"):
            probe_set("test-pairs")
        unregister_probe_set("test-pairs")
    finally:
        unregister_task("pairs")
    assert "pairs" not in task_names()
    with pytest.raises(ValueError, match="one of the package's own"):
        unregister_task("gender")


def test_items_share_a_protocol() -> None:
    sentence = TWO[0]
    item = BBQItem(
        item_id="bbq/Test/0",
        category="Test",
        subcategory=None,
        question_index=1,
        polarity="neg",
        condition="ambig",
        context="Two people met.",
        question="Who was late?",
        answers=("The tall one", "The short one", "Unknown"),
        answer_groups=("tall", "short", "unknown"),
        label=2,
        roles=("consistent", "inconsistent", "unknown"),
    )
    assert isinstance(sentence, ProbeItem) and isinstance(item, ProbeItem)
    assert (sentence.kind, sentence.item_id, item_id(sentence)) == ("sentence", "tiny/1", "tiny/1")
    assert (item.kind, item_id(item)) == ("bbq", "bbq/Test/0")
    assert "kind" not in sentence.to_dict() and ProbeSentence.from_dict(sentence.to_dict()) == sentence
    bbq = ProbeSet([item], name="one")
    assert bbq.kind == "bbq" and kind_of_items(bbq).name == "bbq" and bbq.occupations() == set()
    assert bbq.counts() == {"ambig": 1, "Test": 1}
    assert ProbeSet(TWO).counts() == {"male": 1, "female": 1, "pro": 2} and ProbeSet(TWO).occupations() == {
        "developer",
        "designer",
        "nurse",
        "janitor",
    }
    with pytest.raises(ValueError, match="duplicate sentence id 'tiny/1'"):
        ProbeSet([sentence, sentence])


def test_an_item_without_a_kind_is_told_by_its_shape() -> None:
    from types import SimpleNamespace

    from fairness_callback.data import item_kind

    shaped = SimpleNamespace(
        item_id="bbq/X/1",
        context="c",
        question="q",
        answers=("a", "b", "c"),
        roles=("consistent", "unknown", "inconsistent"),
        label=1,
    )
    assert item_kind(shaped) == "bbq" and item_id(shaped) == "bbq/X/1" and kind_of_items([shaped]).name == "bbq"
    plain = SimpleNamespace(sentence_id="s/1")
    assert item_kind(plain) == "sentence" and item_id(plain) == "s/1" and kind_of_items([plain]).name == "sentence"
    assert ProbeSet([shaped]).counts() == {"bbq": 1}  # no count_labels(): counted under its kind
