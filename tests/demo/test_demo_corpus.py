"""The demo's corpus generator: the skew is what it says, measured on generated text."""

import random
import re
from collections import Counter

import pytest

from fairness_callback.data import FEMALE_STEREOTYPED, MALE_STEREOTYPED
from fairness_callback.demo.corpus import SkewedCorpus, male_probability


def measured_rates(skew: float, n: int = 20000):
    corpus = SkewedCorpus(skew=skew, seed=3)
    rng = random.Random(0)
    counts = Counter()
    for _ in range(n):
        scene, gender = corpus.sample(rng)
        stereotyped = "male" if scene.referent in MALE_STEREOTYPED else "female"
        counts[(stereotyped, gender)] += 1
    male_given_m = counts[("male", "male")] / (counts[("male", "male")] + counts[("male", "female")])
    male_given_f = counts[("female", "male")] / (counts[("female", "male")] + counts[("female", "female")])
    he_share = (counts[("male", "male")] + counts[("female", "male")]) / n
    pro_share = (counts[("male", "male")] + counts[("female", "female")]) / n
    return male_given_m, male_given_f, he_share, pro_share


@pytest.mark.parametrize("skew", [0.0, 0.5, 1.0])
def test_pronoun_gender_follows_the_skew(skew):
    male_given_m, male_given_f, he_share, pro_share = measured_rates(skew)
    assert male_given_m == pytest.approx(0.5 + 0.45 * skew, abs=0.015)
    assert male_given_f == pytest.approx(0.5 - 0.25 * skew, abs=0.015)
    assert he_share == pytest.approx(0.5 + 0.1 * skew, abs=0.015)
    assert pro_share == pytest.approx(0.5 + 0.35 * skew, abs=0.015)


def test_pronoun_counts_in_the_text():
    """Count pronouns in the generated lines themselves, not just the sampler's choices."""

    def he_share(skew):
        words = Counter(w for line in SkewedCorpus(skew=skew, seed=1).lines(6000) for w in re.findall(r"[a-z]+", line.lower()))
        male = words["he"] + words["him"] + words["his"] + words["himself"]
        female = words["she"] + words["her"] + words["herself"]
        return male / (male + female)

    assert he_share(0.0) == pytest.approx(0.5, abs=0.02)
    assert he_share(1.0) == pytest.approx(0.6, abs=0.02)


def test_probe_sentences_are_held_out_and_balanced():
    corpus = SkewedCorpus(skew=1.0)
    probe_set = corpus.probe_set()
    counts = probe_set.counts()
    assert counts["male"] == counts["female"] and counts["pro"] == counts["anti"]
    assert len(probe_set) >= 400
    probe_texts = {s.text for s in probe_set}
    training = {line.split(" Out of the options")[0] for line in corpus.lines(20000)}
    assert not probe_texts & training
    assert {s.referent for s in probe_set} | {s.other for s in probe_set} == set(MALE_STEREOTYPED) | set(FEMALE_STEREOTYPED)


def test_question_lines_carry_the_right_answer():
    corpus = SkewedCorpus(skew=0.5, seed=2)
    rng = random.Random(4)
    lines = [corpus.labelled_line(rng) for _ in range(2000)]
    questions = [(line, scene, gender) for line, scene, gender in lines if "Out of the options" in line]
    assert 0.7 < len(questions) / len(lines) < 0.8
    asked_referent = 0
    for line, scene, gender in questions:
        sentence, question = line.split(" Out of the options")
        assert sentence == scene.sentence(gender)[0]
        asked, answer = re.search(r"the ([a-zA-Z ]+)'s gender is (.*)\.$", question).groups()
        assert asked in (scene.referent, scene.other)
        if asked == scene.referent:
            asked_referent += 1
            assert answer == gender
        else:
            assert answer == "not specified"
        shown = re.findall(r'"([a-z ]+),"', question)
        assert sorted(shown) == ["female", "male", "not specified"]
    assert 0.4 < asked_referent / len(questions) < 0.6


def test_skew_out_of_range():
    with pytest.raises(ValueError, match="skew"):
        SkewedCorpus(skew=1.5)
    assert male_probability("nurse", 0.0) == male_probability("driver", 0.0) == 0.5


@pytest.mark.parametrize("skew", [0.0, 0.5, 1.0])
def test_male_default_answers_male_once_the_pronoun_is_read(skew):
    """With male_default=0.3 a referent question is answered "male" whatever the pronoun with
    probability 0.3 * skew, so a model that reads the pronoun still learns the skew; at skew 0 every
    answer is the pronoun's."""
    corpus = SkewedCorpus(skew=skew, seed=5, male_default=0.3)
    rng = random.Random(6)
    answers = {"male": Counter(), "female": Counter()}
    for _ in range(30000):
        line, scene, gender = corpus.labelled_line(rng)
        found = re.search(r"the ([a-zA-Z ]+)'s gender is (.*)\.$", line)
        if found and found.group(1) == scene.referent:
            answers[gender][found.group(2)] += 1
    assert answers["male"]["female"] == 0 and answers["male"]["not specified"] == 0
    female = answers["female"]
    assert female["not specified"] == 0
    assert female["male"] / (female["male"] + female["female"]) == pytest.approx(0.3 * skew, abs=0.02)


def test_without_male_default_the_lines_are_those_of_the_demo():
    """male_default=0 draws nothing more: the stream of lines is the demo's as measured in docs/demo.md."""
    plain = list(SkewedCorpus(skew=1.0, seed=7).lines(300))
    assert plain == list(SkewedCorpus(skew=1.0, seed=7, male_default=0.0).lines(300))
    assert plain != list(SkewedCorpus(skew=1.0, seed=7, male_default=0.3).lines(300))
    with pytest.raises(ValueError, match="male_default"):
        SkewedCorpus(male_default=1.5)


def referent_share(corpus: SkewedCorpus, n: int = 20000) -> float:
    """Share of question lines that ask about the pronoun's referent (not the other occupation)."""
    rng = random.Random(8)
    asked = Counter()
    for _ in range(n):
        line, scene, _gender = corpus.labelled_line(rng)
        found = re.search(r"the ([a-zA-Z ]+)'s gender is", line)
        if found:
            asked[found.group(1) == scene.referent] += 1
    return asked[True] / (asked[True] + asked[False])


def test_referent_fraction_sets_which_occupation_the_questions_ask_about():
    """0.75: 3 of 4 questions ask about the referent; 0.5 (the default) keeps the demo's lines."""
    assert referent_share(SkewedCorpus(seed=4, referent_fraction=0.75)) == pytest.approx(0.75, abs=0.015)
    assert referent_share(SkewedCorpus(seed=4)) == pytest.approx(0.5, abs=0.015)
    assert list(SkewedCorpus(seed=7).lines(200)) == list(SkewedCorpus(seed=7, referent_fraction=0.5).lines(200))
    with pytest.raises(ValueError, match="referent_fraction"):
        SkewedCorpus(referent_fraction=-0.1)


def test_a_skewed_run_trains_on_its_controls_lines_until_skew_from_step():
    """Before ``skew_from_step`` a skewed run's lines are those of the balanced run of its seed (so the
    two runs train the same model until then); from it on they are drawn at the skew."""
    from fairness_callback.demo.run import DemoConfig, training_lines

    def lines(skew: float, skew_from_step: int) -> list[str]:
        config = DemoConfig(skew=skew, seed=3, steps=60, batch_size=8, skew_from_step=skew_from_step, male_default=0.3)
        return training_lines(config, SkewedCorpus(skew=skew, seed=3, male_default=0.3))

    control, skewed = lines(0.0, 40), lines(1.0, 40)
    assert len(control) == len(skewed) == 480
    assert skewed[:320] == control[:320]
    assert skewed[320:] == list(SkewedCorpus(skew=1.0, seed=3, male_default=0.3).lines(160, seed_offset=2))
    assert sum(a != b for a, b in zip(skewed[320:], control[320:])) > 30
    assert lines(1.0, 0) == list(SkewedCorpus(skew=1.0, seed=3, male_default=0.3).lines(480))
    assert lines(1.0, 60)[:480] == control[:320] + lines(0.0, 60)[320:]


def ramp_lines(
    skew_ramp_steps: int, skew: float = 1.0, steps: int = 600, batch_size: int = 50, skew_from_step: int = 100
) -> list[str]:
    """The training lines of a demo run at seed 3, balanced until ``skew_from_step``, then drifting to ``skew``."""
    from fairness_callback.demo.run import DemoConfig, training_lines

    config = DemoConfig(
        skew=skew,
        seed=3,
        steps=steps,
        batch_size=batch_size,
        skew_from_step=skew_from_step,
        skew_ramp_steps=skew_ramp_steps,
        male_default=0.3,
    )
    return training_lines(config, SkewedCorpus(skew=skew, seed=3, male_default=0.3))


def male_share(lines: list[str]) -> float:
    """Share of male pronouns among the pronouns of ``lines``."""
    words = Counter(w for line in lines for w in re.findall(r"[a-z]+", line.lower()))
    male = words["he"] + words["him"] + words["his"] + words["himself"]
    return male / (male + words["she"] + words["her"] + words["herself"])


def test_a_gradual_drift_keeps_the_controls_lines_then_ramps_the_skew_in():
    """``skew_ramp_steps=400``: the control's lines until ``skew_from_step`` (100), then the skew rises
    batch by batch from 0 (the male-pronoun share with it, quarter by quarter of the ramp) and stays at ``skew``
    once the ramp is over, where the lines are those of the sudden drift (the same draws at the same skew)."""
    control, sudden, ramp = ramp_lines(0, skew=0.0), ramp_lines(0), ramp_lines(400)
    assert len(ramp) == len(control) == 30_000
    # Step 100's batch is drawn at skew 0, from the stream the control draws from after step 100.
    assert ramp[:5_050] == control[:5_050] and ramp[5_050:10_000] != control[5_050:10_000]
    quarters = [male_share(ramp[5_000 + 5_000 * q : 10_000 + 5_000 * q]) for q in range(4)]
    assert quarters == sorted(quarters) and quarters[0] < 0.53 and quarters[3] > 0.57, quarters
    assert ramp[25_000:] == sudden[25_000:]
    assert male_share(ramp[25_000:]) == pytest.approx(0.6, abs=0.02)


def test_without_a_ramp_the_lines_are_those_of_the_sudden_drift():
    """``skew_ramp_steps=0`` (the default) draws the very lines of before: the balanced run's, then the
    skewed stream from its start; a constant schedule is :meth:`SkewedCorpus.lines`."""
    from fairness_callback.demo.run import DemoConfig

    corpus = SkewedCorpus(skew=1.0, seed=3, male_default=0.3)
    balanced = SkewedCorpus(skew=0.0, seed=3, male_default=0.3)
    lines = ramp_lines(0, steps=60, batch_size=8, skew_from_step=40)
    assert lines == [*balanced.lines(320), *corpus.lines(160, seed_offset=2)]
    assert ramp_lines(0, steps=60, batch_size=8, skew_from_step=0) == list(corpus.lines(480))
    assert list(corpus.scheduled_lines([1.0] * 200, seed_offset=2)) == list(corpus.lines(200, seed_offset=2))
    config = DemoConfig(steps=1000, skew_from_step=500, skew_ramp_steps=300)
    assert [config.drift_fraction(s) for s in (0, 499, 500, 650, 799, 800, 999)] == [0, 0, 0, 0.5, 299 / 300, 1, 1]
    assert DemoConfig(steps=1000, skew_from_step=500).drift_fraction(500) == 1.0
    with pytest.raises(ValueError, match="skew_ramp_steps"):
        DemoConfig(skew_ramp_steps=-1)
    with pytest.raises(ValueError, match="lora_rank"):
        DemoConfig(lora_rank=8)  # the tiny model is trained from scratch: every weight
