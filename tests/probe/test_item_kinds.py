"""Item kinds: a kind of item is a class that builds its own prompts; FairnessProbe has no branch per kind."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.data import probe_set, register_probe_set, register_task, unregister_probe_set, unregister_task
from fairness_callback.probe.item_kinds import (
    BBQKind,
    ProbeItemKind,
    SentenceKind,
    UnknownItemKindError,
    item_kind_for,
    item_kind_names,
    kind_of_items,
    register_item_kind,
    unregister_item_kind,
)
from fairness_callback.probe.prompts import Prompt, PromptConfig, option_order
from fairness_callback.probe.tasks import BBQ_TASK, GENDER_TASK, ProbeTask
from support import small_probe_set

#: A two-group task: which of two people a sentence's pronoun refers to, the first named or the second.
PAIRS = ProbeTask(name="pairs", groups=("first", "second"), gap=("second", "first"))


@dataclass(frozen=True)
class PairItem:
    """A test's own kind of item: a sentence and which of its two people the question is about."""

    kind: ClassVar[str] = "pair"

    item_id: str
    text: str
    answer: str
    topic: str


class PairKind(ProbeItemKind):
    """Its prompts: one per item and seed, the two answers shown in a shuffled order, each scored by its own word."""

    name = "pair"
    task = PAIRS
    default_template = "{text} Out of {a} and {b}, the answer is"
    takes_options = True

    def build_prompts(
        self, items: Sequence[Any], template: str, options: Mapping[str, str] | None, seeds: Sequence[int]
    ) -> tuple[PromptConfig | None, list[Prompt]]:
        shown = dict(options or {"first": "male", "second": "female"})
        prompts: list[Prompt] = []
        for index, item in enumerate(items):
            for seed in seeds:
                order = option_order(seed, item.item_id, PAIRS.groups)
                prompts.append(
                    Prompt(
                        index=len(prompts),
                        text=template.format(text=item.text, a=shown[order[0]], b=shown[order[1]]),
                        sentence_index=index,
                        sentence_id=item.item_id,
                        group=item.answer,
                        correct=PAIRS.groups.index(item.answer),
                        seed=seed,
                        order=order,
                        options=tuple(shown[group] for group in PAIRS.groups),
                        labels={"topic": item.topic},
                    )
                )
        return None, prompts


PAIR_ITEMS = tuple(
    PairItem(f"pair/{i}", text, answer, topic)
    for i, (text, answer, topic) in enumerate(
        [
            ("The developer argued with the designer because he did not like the design.", "first", "work"),
            ("The nurse thanked the janitor because she had been helped.", "first", "care"),
            ("The manager called the cashier because she was late.", "second", "work"),
            ("The doctor paid the cook because he was hungry.", "first", "care"),
            ("The lawyer met the baker because he wanted bread.", "first", "work"),
            ("The clerk helped the farmer because she was lost.", "second", "care"),
        ]
    )
)


@pytest.fixture
def pair_kind():
    """The pair kind registered for the test only."""
    register_item_kind(PairKind)
    yield item_kind_for("pair")
    unregister_item_kind("pair")


def test_the_packages_kinds_are_registered_with_their_tasks():
    assert item_kind_names()[:2] == ("sentence", "bbq")
    sentence, bbq = item_kind_for("sentence"), item_kind_for("bbq")
    assert isinstance(sentence, SentenceKind) and sentence.task is GENDER_TASK and sentence.prompts_per_item((0, 1)) == 4
    assert isinstance(bbq, BBQKind) and bbq.task is BBQ_TASK and bbq.prompts_per_item((0, 1)) == 2
    assert kind_of_items(small_probe_set(2)) is sentence and kind_of_items([]) is sentence
    with pytest.raises(ValueError, match="a BBQ probe shows each item's own answers"):
        bbq.check_options({"male": "m"})


def test_a_new_item_kind_probes_through_fairness_probe(pair_kind, bpe_tokenizer, tiny_neox):
    probe = FairnessProbe(bpe_tokenizer, ProbeSet(PAIR_ITEMS, name="pairs"), seeds=(0, 1))
    assert probe.task is PAIRS and len(probe.prompts) == 12 and probe.prompt_set.name == "pairs"
    assert probe.prompts[0].text.startswith(PAIR_ITEMS[0].text + " Out of ")
    result = probe.run(tiny_neox)
    m = result.metrics
    assert m["n/first"] == 8 and m["n/second"] == 4
    assert m["ar/gap"] == pytest.approx(m["ar/second"] - m["ar/first"]) and math.isfinite(m["jsdp/gap"])
    assert result.info["task"] == "pairs" and result.info["groups"] == ["first", "second"]
    assert result.info["template"] is None  # the kind reports no PromptConfig
    assert {record["topic"] for record in result.records} == {"work", "care"}
    plain = FairnessProbe(bpe_tokenizer, list(PAIR_ITEMS), seeds=(0, 1), prefix_sharing="off").run(tiny_neox)
    assert plain.metrics == pytest.approx(m, rel=1e-4, nan_ok=True)


def test_the_kind_takes_the_probes_template_options_and_max_prompts(pair_kind, bpe_tokenizer):
    items = ProbeSet(PAIR_ITEMS, name="pairs")
    probe = FairnessProbe(
        bpe_tokenizer, items, template="{text} Is it {a} or {b}?", options={"first": "he", "second": "she"}, seeds=(0,)
    )
    assert probe.prompts[0].text.startswith(PAIR_ITEMS[0].text + " Is it ") and set(probe.prompts[0].options) == {"he", "she"}
    subset = FairnessProbe(bpe_tokenizer, items, seeds=(0, 1, 2), max_prompts=7)  # 3 prompts an item: 2 whole items
    assert len(subset.probe_set) == 2 and len(subset.prompts) == 6 and subset.full_size == 6


def test_a_registered_set_of_the_new_kind_loads_and_counts(pair_kind):
    register_task("pairs", item_kind="pair")

    @register_probe_set("test-pairs", task="pairs", description="a test's pair items")
    def load() -> ProbeSet:
        return ProbeSet(PAIR_ITEMS, name="test-pairs")

    try:
        loaded = probe_set("test-pairs")
        assert loaded.kind == "pair" and kind_of_items(loaded) is pair_kind
        assert loaded.counts() == {"pair": 6} and loaded.occupations() == set()  # no count_labels, no occupations
    finally:
        unregister_probe_set("test-pairs")
        unregister_task("pairs")


def test_an_unregistered_kind_and_a_bad_kind_say_what_is_wrong(bpe_tokenizer):
    with pytest.raises(UnknownItemKindError, match=r"no item kind 'pair' is registered \(known: sentence, bbq"):
        FairnessProbe(bpe_tokenizer, ProbeSet(PAIR_ITEMS))
    with pytest.raises(ValueError, match="'sentence' is already registered"):
        register_item_kind(SentenceKind)

    class NoPrompts(ProbeItemKind):
        name = "none"
        task = PAIRS
        default_template = "{text}"

    with pytest.raises(TypeError, match="abstract"):
        register_item_kind(NoPrompts)

    class NoTask(PairKind):
        name = "no-task"
        task = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="needs a task"):
        register_item_kind(NoTask)
    with pytest.raises(TypeError, match="is a ProbeItemKind"):
        register_item_kind(object())  # type: ignore[type-var]
    assert "none" not in item_kind_names() and "no-task" not in item_kind_names()


def test_a_kind_without_options_refuses_them(pair_kind, bpe_tokenizer):
    class Fixed(PairKind):
        name = "fixed"
        takes_options = False

    @dataclass(frozen=True)
    class FixedItem(PairItem):
        kind: ClassVar[str] = "fixed"

    register_item_kind(Fixed)
    try:
        items = [FixedItem(item.item_id, item.text, item.answer, item.topic) for item in PAIR_ITEMS]
        with pytest.raises(ValueError, match="options: a probe of 'fixed' items takes none"):
            FairnessProbe(bpe_tokenizer, items, options={"first": "he", "second": "she"})
        assert len(FairnessProbe(bpe_tokenizer, items, seeds=(0,)).prompts) == 6
    finally:
        unregister_item_kind("fixed")
