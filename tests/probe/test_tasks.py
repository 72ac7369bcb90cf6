"""Probe tasks as data: K options, per-prompt scored tokens, subsets, several probes in one run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fairness_callback import FairnessProbe, FairnessTracker, ProbeSet
from fairness_callback.probe.metrics import jsd_parts
from fairness_callback.probe.prompts import BBQ_LETTERS, PromptSet, build_bbq_prompts
from fairness_callback.probe.tasks import BBQ_TASK, GENDER_TASK, ProbeTask
from fairness_callback.training.history import read_history
from support import ScriptedGapProbe, make_model, make_tokenizer, point_rule, small_probe

SEASONS = ProbeTask(name="season", groups=("spring", "summer", "autumn", "winter"), gap=("winter", "summer"))


def season_records() -> list[dict]:
    """Four-option prompts, two per item (two option orders), the options scored by their own words."""
    records = []
    for item, (month, season) in enumerate(
        [
            ("March", "spring"),
            ("July", "summer"),
            ("October", "autumn"),
            ("January", "winter"),
            ("August", "summer"),
            ("December", "winter"),
        ]
    ):
        for seed, order in enumerate([SEASONS.groups, SEASONS.groups[::-1]]):
            shown = ", ".join(order)
            records.append(
                {
                    "id": f"m{item}",
                    "text": f"The month is {month}. Out of {shown}, the season is",
                    "options": {g: g for g in SEASONS.groups},
                    "correct": season,
                    "seed": seed,
                    "order": list(order),
                    "labels": {"hemisphere": "north"},
                }
            )
    return records


def naive(model, tokenizer, text: str, token_ids: list[int]) -> tuple[list[int], list[float]]:
    """One prompt alone, full logits: the ranks and log-probs of ``token_ids``."""
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].float()
    ranks = [int((logits > logits[t]).sum()) + 1 for t in token_ids]
    return ranks, torch.log_softmax(logits, -1)[token_ids].tolist()


def test_a_task_with_four_options_as_data(bpe_tokenizer, tiny_neox):
    prompts = PromptSet.from_records(SEASONS, season_records(), name="seasons")
    probe = FairnessProbe(bpe_tokenizer, prompts, batch_size=4)
    result = probe.run(tiny_neox)
    m = result.metrics
    assert [m[f"n/{g}"] for g in SEASONS.groups] == [2, 4, 2, 4]
    assert m["ar/gap"] == pytest.approx(m["ar/winter"] - m["ar/summer"])
    assert {f"jsdp/{g}/{o}" for g in SEASONS.groups for o in SEASONS.groups} <= set(m)  # the K x K parts table
    assert result.info["groups"] == list(SEASONS.groups) and result.info["prefix_sharing"] == "tree"
    for record in result.records:  # every record can be re-scored alone from what it names
        token_ids = [record["options"][g]["token_id"] for g in SEASONS.groups]
        ranks, logprobs = naive(tiny_neox, bpe_tokenizer, record["prompt"], token_ids)
        assert [record["option_ranks"][g] for g in SEASONS.groups] == ranks
        assert record["rank"] == ranks[SEASONS.groups.index(record["correct"])]
        probs = torch.tensor([logprobs]).double().exp()
        parts = jsd_parts(probs, torch.tensor([SEASONS.groups.index(record["correct"])]))[0].tolist()
        assert [record["parts"][g] for g in SEASONS.groups] == pytest.approx(parts, rel=1e-4)
    plain = FairnessProbe(bpe_tokenizer, prompts, batch_size=4, prefix_sharing="off").run(tiny_neox)
    assert plain.metrics == pytest.approx(m, rel=1e-4, nan_ok=True)


def test_task_and_prompt_set_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="gap must name two different groups"):
        ProbeTask(name="x", groups=("a", "b"), gap=("a", "c"))
    records = season_records()
    records[3]["correct"] = "monsoon"
    with pytest.raises(ValueError, match="seasons, record 3: correct 'monsoon' is not one of"):
        PromptSet.from_records(SEASONS, records, name="seasons")
    records = season_records()
    with pytest.raises(ValueError, match="seasons, record 2: the prompts of item 'm0' are not adjacent"):
        PromptSet.from_records(SEASONS, [records[0], records[2], records[1]], name="seasons")


def fake_bbq_item(i: int, condition: str):
    """A BBQ-shaped item (the loader's fields): the answer order of the file, roles per answer."""
    return SimpleNamespace(
        item_id=f"bbq/Test/{i}",
        context=f"A tall person and a short person met at the fair number {i}.",
        question="Who was rude?",
        answers=("The tall person", "Can't be determined", "The short person"),
        roles=("consistent", "unknown", "inconsistent"),
        label=1 if condition == "ambig" else 2,
        condition=condition,
        polarity="neg",
        category="Test",
        question_index="1",
    )


def test_bbq_prompts_letter_the_answers_in_a_shuffled_order():
    items = [fake_bbq_item(0, "ambig"), fake_bbq_item(1, "disambig")]
    prompts = build_bbq_prompts(items, seeds=(0, 1, 2))
    assert len(prompts) == 6
    for p in prompts:
        item = items[p.sentence_index]
        assert p.group == item.roles[item.label]
        for group, letter in zip(BBQ_TASK.groups, p.options):  # the letter each answer is shown under
            answer = item.answers[item.roles.index(group)]
            assert f"\n{letter}. {answer}\n" in p.text + "\n"
        assert sorted(p.options) == list(BBQ_LETTERS) and p.text.endswith("Answer:")
    assert len({p.options for p in prompts}) > 1  # the seeds shuffle the letters


def test_bbq_probe_scores_letters_and_reports_conditions(gpt2_tokenizer):
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    items = [fake_bbq_item(i, "ambig" if i % 2 else "disambig") for i in range(8)]
    probe = FairnessProbe(gpt2_tokenizer, items, seeds=(0, 1))  # " A", " B", " C": one GPT-2 token each
    model = tiny_gpt_neox(len(gpt2_tokenizer), seed=0).eval()
    result = probe.run(model)
    m = result.metrics
    assert result.info["prefix_sharing"] == "tree"
    plain = FairnessProbe(gpt2_tokenizer, items, seeds=(0, 1), prefix_sharing="off").run(model).metrics
    assert plain == pytest.approx(m, rel=1e-4, nan_ok=True)
    assert probe.task is BBQ_TASK
    assert m["n/unknown"] == 8 and m["n/inconsistent"] == 8 and m["n/consistent"] == 0
    assert m["ambig/n/unknown"] == 8 and m["disambig/n/inconsistent"] == 8
    assert "ambig/jsdp/unknown/consistent" in m and "ambig/jsdp/unknown/inconsistent" in m
    letters = {tuple(row) for row in probe.encoded.answer_ids.tolist()}
    assert len(letters) > 1 and all(len(set(row)) == 3 for row in letters)  # per-prompt scored tokens


def test_several_probes_in_one_run_prefix_every_key_and_name_the_others_at_the_stop(tmp_path):
    tokenizer = make_tokenizer()
    model = make_model(tokenizer)
    logged = []
    tracker = FairnessTracker(
        every_n_steps=1,
        probes={"gender": ScriptedGapProbe(tokenizer, [0.05, 0.01, 0.02, 0.03]), "other": small_probe(tokenizer, sentences=4)},
        early_stopping=point_rule(monitor="gender/jsdp/gap", patience=2),
        history_path=tmp_path / "h.jsonl",
        log=lambda metrics, step: logged.append(metrics),
    )
    outcomes = [tracker.start(model)] + [tracker.step(model, step) for step in (1, 2, 3)]
    assert outcomes[-1].should_stop
    keys = set(outcomes[0].metrics)
    assert {"gender/jsdp/gap", "other/jsdp/gap", "other/ar/male", "gender/mwu_p/jsdp"} <= keys
    assert all(k.startswith(("gender/", "other/")) for k in keys)
    assert "fairness/other/jsdp/gap" in logged[0] and "fairness/gender/acc/male" in logged[0]
    other = [o.metrics["other/jsdp/gap"] for o in outcomes]
    assert outcomes[-1].message.endswith(
        f"other probes at step 3 (best step 1): other/jsdp/gap {other[3]:+.4g} ({other[1]:+.4g})"
    )
    records = read_history(tmp_path / "h.jsonl")
    stop = records[-1]
    assert stop["other_gaps"] == {"other/jsdp/gap": {"at_stop": other[3], "at_best": other[1]}}
    assert records[1]["other/jsdp/gap_sudden"] is False and "gender/by_seed" not in records[1]
    layout = tracker.tensorboard_layout()
    assert set(layout) == {"fairness/gender", "fairness/other"}
    with pytest.raises(ValueError, match="not both"):
        FairnessTracker(probe=small_probe(tokenizer), probes={"a": small_probe(tokenizer)})


def test_gender_task_is_the_papers():
    assert GENDER_TASK.groups == ("male", "female", "not_specified") and GENDER_TASK.gap == ("female", "male")


# -- the real data sets -----------------------------------------------------------------------------
def test_winogender_reports_they_beside_he_and_she(winogender_dir, bpe_tokenizer, tiny_neox):
    probe_set = ProbeSet.from_winogender(winogender_dir)
    counts = probe_set.counts()
    m = FairnessProbe(bpe_tokenizer, probe_set, seeds=(0,)).run(tiny_neox).metrics
    assert m["n/male"] == counts["male"] and m["n/female"] == counts["female"]
    assert m["n/not_specified"] == counts["male"] + counts["female"]  # the other mention of each he/she sentence
    assert m["they/n/not_specified"] == 2 * counts["neutral"] and m["they/n/male"] == 0  # both mentions: not specified
    assert {"they/jsdp/not_specified/male", "they/jsdp/not_specified/female"} <= set(m)  # where "they" mass goes


@pytest.mark.slow
def test_builtin_they_set_alone_reports_at_the_top(bpe_tokenizer, tiny_neox):
    probe_set = ProbeSet.builtin_they()
    m = FairnessProbe(bpe_tokenizer, probe_set, seeds=(0,)).run(tiny_neox).metrics
    assert m["n/not_specified"] == 2 * len(probe_set) and m["n/male"] == 0
    assert not any(key.startswith("they/") for key in m)  # no duplicate of the top level


def test_bbq_religion_on_the_real_files(bbq_dir, gpt2_tokenizer):
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    probe_set = ProbeSet.from_bbq(bbq_dir, ["Religion"])
    assert probe_set.counts() == {"ambig": 600, "disambig": 600, "Religion": 1200} and probe_set.occupations() == set()
    items = ProbeSet(probe_set[:40], name="bbq-religion-40")
    model = tiny_gpt_neox(len(gpt2_tokenizer), seed=0).eval()
    shipped = FairnessProbe(gpt2_tokenizer, items, seeds=(0, 1))
    result = shipped.run(model)
    m = result.metrics
    ambig = sum(item.condition == "ambig" for item in items)
    assert m["ambig/n/unknown"] == 2 * ambig and m["disambig/n/unknown"] == 0  # a disambiguated answer is a group
    assert m["n/consistent"] + m["n/inconsistent"] == 2 * (len(items) - ambig)
    assert result.info["prefix_sharing"] == "tree"
    plain = FairnessProbe(gpt2_tokenizer, items, seeds=(0, 1), prefix_sharing="off").run(model).metrics
    assert plain == pytest.approx(m, rel=1e-4, abs=1e-7, nan_ok=True)


def test_a_bbq_probe_of_several_categories_reports_each_beside_the_summary(bbq_dir, gpt2_tokenizer):
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    religion, age = ProbeSet.from_bbq(bbq_dir, ["Religion"]), ProbeSet.from_bbq(bbq_dir, ["Age"])
    items = ProbeSet(list(religion[:12]) + list(age[:8]), name="bbq-two")
    model = tiny_gpt_neox(len(gpt2_tokenizer), seed=0).eval()
    result = FairnessProbe(gpt2_tokenizer, items, seeds=(0,)).run(model)
    m = result.metrics
    for category, count in (("Religion", 12), ("Age", 8)):
        assert sum(m[f"{category}/n/{g}"] for g in BBQ_TASK.groups) == count
        chosen = [r for r in result.records if r["category"] == category]
        correct = [r for r in chosen if r["group"] == "unknown"]
        assert m[f"{category}/acc/unknown"] == pytest.approx(
            sum(min(r["option_ranks"], key=r["option_ranks"].get) == "unknown" for r in correct) / len(correct)
        )
    assert sum(m[f"n/{g}"] for g in BBQ_TASK.groups) == 20  # the top level is the summary of both
    alone = FairnessProbe(gpt2_tokenizer, ProbeSet(religion[:12], name="r"), seeds=(0,)).run(model).metrics
    assert not any(key.startswith("Religion/") for key in alone)  # one category: no copy of the top level
    subset = {k[len("Religion/") :]: v for k, v in m.items() if k.startswith("Religion/")}
    assert len(subset) > 30 and subset == pytest.approx({k: alone[k] for k in subset}, rel=1e-4, abs=1e-7, nan_ok=True)


def test_cli_probes_several_axes(tmp_path, gpt2_tokenizer, winogender_dir, bbq_dir, capsys):
    from fairness_callback.cli import main
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    model_dir = tmp_path / "model"
    tiny_gpt_neox(len(gpt2_tokenizer), seed=0).save_pretrained(model_dir)
    gpt2_tokenizer.save_pretrained(model_dir)
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "probe",
                "--model",
                str(model_dir),
                "--seeds",
                "0",
                "--winogender",
                str(winogender_dir),
                "--they",
                "--bbq",
                str(bbq_dir),
                "--bbq-categories",
                "Religion",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "probe 'religion':" in printed and "BBQ items (bbq-Religion)" in printed and "probe 'they':" in printed
    import json

    metrics = json.loads(out.read_text())["metrics"]
    assert {
        "gender/jsdp/gap",
        "gender/they/ar/not_specified",
        "they/jsdp/not_specified/male",
        "religion/jsdp/gap",
        "religion/ambig/jsdp/unknown/consistent",
    } <= set(metrics)
    with pytest.raises(SystemExit, match="--bbq-categories needs --bbq DIR"):
        main(["probe", "--model", str(model_dir), "--bbq-categories", "Age"])
