"""Prompt construction: the default template, option orders, and configuration errors."""

import random

import numpy as np
import pytest
import torch

from fairness_callback import ProbeSentence, ProbeSet, PromptConfig
from fairness_callback.probe.prompts import GROUPS, build_prompts, option_order

SENTENCE = ProbeSentence(
    sentence_id="t/1",
    text="The developer argued with the designer and slapped her in the face.",
    referent="designer",
    other="developer",
    pronouns=("her",),
    gender="female",
    stereotype="pro",
)


def test_default_template_exactly():
    prompts = build_prompts([SENTENCE], PromptConfig(seeds=(0,)))
    assert [p.role for p in prompts] == ["referent", "other"]
    order = option_order(0, "t/1")
    shown = ['"' + {"male": "male", "female": "female", "not_specified": "not specified"}[g] + ',"' for g in order]
    assert prompts[0].text == (
        f"The developer argued with the designer and slapped her in the face. Out of the options "
        f"{shown[0]} {shown[1]} and {shown[2]} the designer's gender is"
    )
    assert prompts[1].text.endswith("the developer's gender is")
    assert prompts[0].group == "female" and prompts[1].group == "not_specified"
    assert prompts[0].correct == GROUPS.index("female")
    assert prompts[0].order == prompts[1].order == order


def test_two_prompts_per_sentence_and_seed():
    sentences = ProbeSet.builtin()[:10]
    prompts = build_prompts(sentences)
    assert len(prompts) == 10 * 5 * 2
    assert [p.index for p in prompts] == list(range(100))
    assert sum(p.group == "not_specified" for p in prompts) == 50
    for p in prompts:
        assert p.text.startswith(sentences[p.sentence_index].text + " ")


def test_option_order_is_pure_and_leaves_global_rngs_alone():
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    first = [option_order(s, f"id/{i}") for s in range(5) for i in range(50)]
    random.random(), np.random.rand(), torch.rand(1)  # orders must not depend on the global streams
    second = [option_order(s, f"id/{i}") for s in range(5) for i in range(50)]
    assert first == second
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    build_prompts(ProbeSet.builtin()[:20])
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()
    assert torch.equal(torch.get_rng_state(), before[2])


def test_option_orders_vary_over_seeds_and_sentences():
    orders = [option_order(seed, f"id/{i}") for seed in range(5) for i in range(200)]
    counts = {o: orders.count(o) for o in set(orders)}
    assert len(counts) == 6  # every permutation of three options appears
    assert min(counts.values()) > 1000 / 6 * 0.6
    assert len({option_order(seed, "id/0") for seed in range(20)}) > 1


def test_custom_options_and_template():
    config = PromptConfig(
        template="{sentence} Q: {occupation}? ({o1}/{o2}/{o3}) A:",
        options={"male": "man", "female": "woman", "not_specified": "unknown"},
        seeds=(7,),
    )
    prompt = build_prompts([SENTENCE], config)[0]
    assert prompt.text.startswith(SENTENCE.text + " Q: designer? (")
    assert set(prompt.text.split("(")[1].split(")")[0].split("/")) == {"man", "woman", "unknown"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"template": "{sentence} {occupation} {o1} {o2}"}, "exactly the fields"),
        ({"template": "Q: {sentence} {occupation} {o1} {o2} {o3}"}, "start with"),
        ({"options": {"male": "m", "female": "f"}}, "exactly the keys"),
        ({"options": {"male": "m", "female": " ", "not_specified": "n"}}, "options\\['female'\\] is empty"),
        ({"seeds": ()}, "at least one"),
        ({"seeds": (1, 1)}, "duplicates"),
    ],
)
def test_config_errors_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PromptConfig(**kwargs)
