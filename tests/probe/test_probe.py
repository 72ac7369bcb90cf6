"""The probe end to end on tiny models: exactness against a naive reference, batching, safety."""

import json
import math
import random

import numpy as np
import pytest
import torch

from fairness_callback import AnswerTokenError, FairnessProbe, ProbeResult
from fairness_callback.probe import scoring
from fairness_callback.probe.metrics import compute_metrics, jsd_parts


def naive_scores(model, tokenizer, probe):
    """One prompt at a time, no padding, full logits, rank by sorting: the obvious implementation."""
    ranks, logprobs = [], []
    answer_ids = list(probe.answer_tokens.ids)
    with torch.no_grad():
        for prompt in probe.prompts:
            ids = torch.tensor([tokenizer(prompt.text)["input_ids"]])
            logits = model(ids).logits[0, -1].float()
            ordered = torch.sort(logits, descending=True).values.tolist()
            ranks.append([ordered.index(logits[i].item()) + 1 for i in answer_ids])
            logprobs.append(torch.log_softmax(logits, -1)[answer_ids].tolist())
    return torch.tensor(ranks, dtype=torch.float64), torch.tensor(logprobs)


@pytest.fixture(scope="module")
def neox_probe(bpe_tokenizer, small_probe_set):
    return FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0, 1), batch_size=16)


@pytest.mark.slow
def test_probe_equals_naive_reference(tiny_neox, bpe_tokenizer, neox_probe):
    result = neox_probe.run(tiny_neox)
    ref_ranks, ref_logprobs = naive_scores(tiny_neox, bpe_tokenizer, neox_probe)
    ours = neox_probe.score(tiny_neox)
    assert torch.equal(ours.ranks, ref_ranks)
    assert (ours.logprobs - ref_logprobs).abs().max() < 1e-4
    # metrics from the reference scores agree with the probe's
    correct = neox_probe.encoded.correct
    probs = ref_logprobs.double().exp()
    ref = compute_metrics(
        correct,
        ref_ranks.gather(1, correct[:, None]).squeeze(1),
        probs,
        jsd_parts(probs, correct),
        [p.labels for p in neox_probe.prompts],
        sentence_index=torch.tensor([p.sentence_index for p in neox_probe.prompts]),
    )
    assert set(ref) == set(result.metrics)
    for key, value in ref.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), key


def test_by_seed_values_average_to_the_metrics(tiny_neox, neox_probe):
    result = neox_probe.run(tiny_neox)
    for key in ("ar/male", "jsdp/female", "jsdp/gap"):
        per_seed = result.by_seed[key]
        assert len(per_seed) == 2
        assert sum(per_seed) / 2 == pytest.approx(result.metrics[key], rel=1e-9)
    low, high = result.metrics["jsdp/gap_ci_low"], result.metrics["jsdp/gap_ci_high"]
    assert low <= result.metrics["jsdp/gap"] <= high


def test_required_metric_keys(tiny_neox, neox_probe):
    metrics = neox_probe.run(tiny_neox).metrics
    groups = ("male", "female", "not_specified")
    required = [f"{m}/{g}" for m in ("ar", "jsdp", "acc") for g in groups] + ["ar/gap", "jsdp/gap", "mwu_p/ar", "mwu_p/jsdp"]
    required += [f"jsdp/{g}/{o}" for g in groups for o in groups]
    required += ["pro/ar/gap", "anti/jsdp/gap"]
    assert not set(required) - set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    # an untrained model spreads its mass over the vocabulary: "uniformly uncertain", about 0.5 everywhere
    assert all(0.45 < metrics[f"jsdp/{g}"] <= 0.5 for g in groups)
    assert metrics["ar/gap"] == pytest.approx(metrics["ar/female"] - metrics["ar/male"])


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["tiny_neox", "tiny_gpt2"])
def test_batched_equals_alone(request, model_fixture, bpe_tokenizer, small_probe_set):
    """Left padding with correct position ids: a prompt scores the same in a batch as alone."""
    model = request.getfixturevalue(model_fixture)
    batched = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), batch_size=48, prefix_sharing="off")
    alone = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), batch_size=1, prefix_sharing="off")
    lengths = batched.encoded.lengths
    assert lengths.max() > lengths.min() + 3  # batches really are padded
    diff = (batched.score(model).logprobs - alone.score(model).logprobs).abs().max()
    assert diff < 1e-4


@pytest.mark.slow
def test_gpt2_batching_test_is_sensitive_to_position_ids(monkeypatch, tiny_gpt2, bpe_tokenizer, small_probe_set):
    """Withholding position ids breaks GPT-2 under left padding, so the test above can fail."""
    batched = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), batch_size=48, prefix_sharing="off")
    alone = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), batch_size=1).score(tiny_gpt2).logprobs
    real = scoring.forward_options
    monkeypatch.setattr(scoring, "forward_options", lambda m: {**real(m), "position_ids": False})
    assert (batched.score(tiny_gpt2).logprobs - alone).abs().max() > 1e-3


class FullLogitsOnly(torch.nn.Module):
    """A model whose forward takes only input_ids and attention_mask and returns all positions."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask):
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits


@pytest.mark.slow
def test_model_without_logits_to_keep(tiny_neox, neox_probe):
    assert not scoring.forward_options(FullLogitsOnly(tiny_neox))["logits_to_keep"]
    plain = neox_probe.score(FullLogitsOnly(tiny_neox))
    kept = neox_probe.score(tiny_neox)
    assert torch.equal(plain.ranks, kept.ranks)
    assert (plain.logprobs - kept.logprobs).abs().max() < 1e-5


def test_modes_rng_and_tokenizer_untouched(tiny_neox, bpe_tokenizer, neox_probe):
    tiny_neox.train()
    tiny_neox.gpt_neox.layers[0].eval()  # a user's own mixed modes must come back as they were
    modes = [m.training for m in tiny_neox.modules()]
    tokenizer_state = (bpe_tokenizer.padding_side, bpe_tokenizer.pad_token, bpe_tokenizer.truncation_side, len(bpe_tokenizer))
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    neox_probe.run(tiny_neox)
    assert [m.training for m in tiny_neox.modules()] == modes
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    assert (
        bpe_tokenizer.padding_side,
        bpe_tokenizer.pad_token,
        bpe_tokenizer.truncation_side,
        len(bpe_tokenizer),
    ) == tokenizer_state
    assert all(p.grad is None for p in tiny_neox.parameters())
    tiny_neox.eval()


def test_dropout_model_scores_deterministically(bpe_tokenizer, small_probe_set):
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    model = tiny_gpt_neox(len(bpe_tokenizer), hidden_dropout=0.5, attention_dropout=0.5).train()
    probe = FairnessProbe(bpe_tokenizer, small_probe_set[:4], seeds=(0,))
    assert torch.equal(probe.score(model).logprobs, probe.score(model).logprobs)
    assert model.training


class NaNRows(torch.nn.Module):
    """Wraps a model and poisons the logits of every other row with NaN."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep=0, use_cache=None):
        out = self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=logits_to_keep
        )
        logits = out.logits.clone()
        logits[::2] = float("nan")
        return logits


def test_non_finite_logits_warn_and_give_nan(tiny_neox, neox_probe):
    with pytest.warns(RuntimeWarning, match="non-finite logits"):
        result = neox_probe.run(NaNRows(tiny_neox))
    assert math.isnan(result.metrics["jsdp/gap"]) and math.isnan(result.metrics["ar/male"])


def test_result_json_round_trip(tiny_neox, neox_probe):
    result = neox_probe.run(tiny_neox)
    again = ProbeResult.from_json(result.to_json())
    assert again.metrics == result.metrics and again.records == result.records and again.info == result.info
    record = result.records[0]
    assert {"prompt", "sentence_id", "occupation", "group", "seed", "stereotype", "rank", "option_probs", "parts"} <= set(record)
    assert record["prompt"] == neox_probe.prompts[0].text
    assert record["rank"] == record["option_ranks"][record["group"]]
    json.dumps(result.info)  # plain JSON types only
    assert "JSD-P" in result.table()


def test_normalize_options_renormalises(tiny_neox, bpe_tokenizer, small_probe_set):
    probe = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), normalize="options")
    for record in probe.run(tiny_neox).records[:10]:
        assert sum(record["option_probs"].values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="normalize"):
        FairnessProbe(bpe_tokenizer, small_probe_set, normalize="softmax")


def test_real_gpt2_tokenizer_answer_tokens(gpt2_tokenizer, small_probe_set):
    probe = FairnessProbe(gpt2_tokenizer, small_probe_set, seeds=(0,))
    answers = probe.answer_tokens
    assert answers.ids == tuple(gpt2_tokenizer.convert_tokens_to_ids(["Ġmale", "Ġfemale", "Ġnot"]))
    assert answers.pieces["not_specified"] == ("Ġnot", "Ġspecified")
    assert answers.multi_token == ("not_specified",)
    assert probe.encoded.token_ids[0] == gpt2_tokenizer(probe.prompts[0].text)["input_ids"]


def test_answer_token_errors_show_the_tokenisation(gpt2_tokenizer, small_probe_set):
    with pytest.raises(AnswerTokenError, match="not distinct.*'male person' -> \\['Ġmale', 'Ġperson'\\]"):
        FairnessProbe(
            gpt2_tokenizer, small_probe_set, options={"male": "male person", "female": "female", "not_specified": "male or not"}
        )


def test_default_probe_set_comes_from_env(monkeypatch, winobias_dir, bpe_tokenizer):
    monkeypatch.setenv("FAIRNESS_WINOBIAS_DIR", str(winobias_dir))
    probe = FairnessProbe(bpe_tokenizer, seeds=(0,))
    assert len(probe.probe_set) == 1584 and len(probe) == 1584 * 2


@pytest.fixture(scope="module")
def tiny_llama(bpe_tokenizer):
    """A random 2-layer Llama (grouped-query attention, rotary): the SmolLM2 / Llama-style cache."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(2)
    config = LlamaConfig(
        vocab_size=len(bpe_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval()


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["tree", "cache"])
@pytest.mark.parametrize("model_fixture", ["tiny_neox", "tiny_gpt2", "tiny_llama"])
def test_prefix_sharing_equals_the_plain_path(request, model_fixture, sharing, bpe_tokenizer, small_probe_set):
    """Shared prefixes run once (packed as a token tree, or through the key/value cache): same numbers."""
    model = request.getfixturevalue(model_fixture)
    plain = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0, 1), batch_size=16, prefix_sharing="off")
    shared = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0, 1), batch_size=16, prefix_sharing=sharing)
    assert shared.prefix_sharing_for(model) == sharing and plain.prefix_sharing_for(model) == "off"
    assert int(shared.encoded.prefix_length.min()) >= 5  # the sentence really is shared
    a, b = plain.score(model), shared.score(model)
    assert (a.logprobs - b.logprobs).abs().max() < 1e-4
    assert torch.equal(a.ranks, b.ranks)
    subset = list(range(0, len(plain), 3))  # partial sentences: fewer prompts per sentence
    assert (plain.score(model, subset).logprobs[subset] - shared.score(model, subset).logprobs[subset]).abs().max() < 1e-4


def test_tree_packing_with_eager_attention(bpe_tokenizer, small_probe_set):
    """Eager attention adds the mask to the scores: the boolean tree mask is turned into an additive one."""
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    model = tiny_gpt_neox(len(bpe_tokenizer), attn_implementation="eager").eval()
    assert model.config._attn_implementation == "eager"
    plain = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), batch_size=16, prefix_sharing="off")
    tree = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), batch_size=16)
    assert tree.prefix_sharing_for(model) == "tree"
    assert (plain.score(model).logprobs - tree.score(model).logprobs).abs().max() < 1e-4


def test_prefix_sharing_auto_choice(tiny_neox, neox_probe, bpe_tokenizer, small_probe_set):
    assert neox_probe.prefix_sharing_for(tiny_neox) == "tree"
    assert neox_probe.prefix_sharing_for(FullLogitsOnly(tiny_neox)) == "off"  # no cache, no position ids
    implementation = tiny_neox.config._attn_implementation
    try:
        tiny_neox.config._attn_implementation = "flash_attention_2"  # takes no custom 4D mask
        assert neox_probe.prefix_sharing_for(tiny_neox) == "cache"
    finally:
        tiny_neox.config._attn_implementation = implementation
    with pytest.raises(ValueError, match="prefix_sharing must be one of"):
        FairnessProbe(bpe_tokenizer, small_probe_set, prefix_sharing=True)


def test_max_prompts_takes_a_fixed_subset_of_whole_sentences(bpe_tokenizer, tiny_neox):
    from fairness_callback import ProbeSet

    full = ProbeSet.builtin()
    a = FairnessProbe(bpe_tokenizer, full, seeds=(0, 1), max_prompts=203)
    b = FairnessProbe(bpe_tokenizer, ProbeSet(list(full)[::-1], name="reversed"), seeds=(0, 1), max_prompts=203)
    assert len(a) == 200 and len(a.probe_set) == 50  # whole sentences: 4 prompts each
    assert {s.sentence_id for s in a.probe_set} == {s.sentence_id for s in b.probe_set}  # order-independent
    assert a.probe_set.name == "builtin[50 of 560]"
    metrics = a.run(tiny_neox).metrics
    assert metrics["jsdp/male/se"] > 0 and metrics["jsdp/gap/se"] == pytest.approx(
        math.hypot(metrics["jsdp/male/se"], metrics["jsdp/female/se"])
    )
    with pytest.raises(ValueError, match="less than one sentence"):
        FairnessProbe(bpe_tokenizer, full, seeds=(0, 1), max_prompts=3)


def tiny_of_type(model_type: str, vocab_size: int) -> torch.nn.Module:
    """A random 2-layer causal LM of ``model_type`` (the architectures prefix sharing is enabled for)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "head_dim": 16,
    }
    if model_type == "gpt2":
        sizes = {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256}
    elif model_type == "gpt_neox":
        sizes = {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 256,
        }
    torch.manual_seed(3)
    special = {"pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0}  # within the tiny vocabulary
    config = AutoConfig.for_model(model_type, vocab_size=vocab_size, **special, **sizes)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sorted(scoring.PREFIX_SHARING_MODEL_TYPES))
def test_every_enabled_architecture_gives_the_plain_numbers(model_type, bpe_tokenizer, small_probe_set):
    """'auto' turns prefix sharing on by model type: each listed type is checked, both ways."""
    model = tiny_of_type(model_type, len(bpe_tokenizer))
    sentences = small_probe_set[:6]
    plain = FairnessProbe(bpe_tokenizer, sentences, seeds=(0, 1), batch_size=8, prefix_sharing="off").score(model)
    auto = FairnessProbe(bpe_tokenizer, sentences, seeds=(0, 1), batch_size=8)
    assert auto.prefix_sharing_for(model) == "tree"
    for mode in ("tree", "cache"):
        shared = FairnessProbe(bpe_tokenizer, sentences, seeds=(0, 1), batch_size=8, prefix_sharing=mode).score(model)
        assert (shared.logprobs - plain.logprobs).abs().max() < 1e-4, mode
