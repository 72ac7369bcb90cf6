"""The probe sees through the wrappers people train with, and takes the bare model's path.

PEFT (LoRA): scored with the adapters active, on the token tree, with the numbers of
``merge_and_unload()``; prompt-learning adapters fall back to the plain path and say why.
``torch.compile``: the original module runs eagerly, so the probe never compiles. DeepSpeed:
``tests/probe/test_distributed.py`` runs ZeRO-3 on 2 ranks.
"""

from __future__ import annotations

import logging

import pytest
import torch

from fairness_callback import FairnessProbe
from fairness_callback.probe.scoring import choose_path, forward_target, unwrap_model

peft = pytest.importorskip("peft")

#: LoRA target modules of each tiny architecture (GPT-2's fused Conv1D attention included).
LORA_TARGETS = {"gpt_neox": ["query_key_value"], "gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"]}


@pytest.fixture
def neox_probe(bpe_tokenizer, small_probe_set):
    return FairnessProbe(bpe_tokenizer, small_probe_set[:8], seeds=(0, 1), batch_size=16)


def tiny(model_type: str, vocab_size: int) -> torch.nn.Module:
    from test_probe import tiny_of_type

    return tiny_of_type(model_type, vocab_size)


def with_lora(model: torch.nn.Module, model_type: str) -> torch.nn.Module:
    # Random B matrices (init_lora_weights=False): with the default zero init the adapter would
    # not change the output, and "scored with the adapters active" could not fail.
    config = peft.LoraConfig(
        r=8, target_modules=LORA_TARGETS[model_type], init_lora_weights=False, fan_in_fan_out=model_type == "gpt2"
    )
    torch.manual_seed(5)
    return peft.get_peft_model(model, config).eval()


@pytest.mark.parametrize("model_type", sorted(LORA_TARGETS))
def test_lora_takes_the_bare_path_with_the_merged_models_numbers(model_type, bpe_tokenizer, small_probe_set):
    base = tiny(model_type, len(bpe_tokenizer))
    probe = FairnessProbe(bpe_tokenizer, small_probe_set[:8], seeds=(0, 1), batch_size=16)
    bare_path = probe.prefix_sharing_for(base)
    bare = probe.score(base)
    lora = with_lora(base, model_type)
    assert probe.prefix_sharing_for(lora) == bare_path == "tree"
    adapted = probe.run(lora)
    assert adapted.info["prefix_sharing"] == "tree"
    merged_model = lora.merge_and_unload()
    merged = probe.run(merged_model)
    assert (probe.score(merged_model).logprobs - bare.logprobs).abs().max() > 1e-3  # the adapter changes the model
    for key, value in merged.metrics.items():
        assert adapted.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), key
    assert [r["rank"] for r in adapted.records] == [r["rank"] for r in merged.records]


def test_lora_model_is_called_through_its_peft_wrapper(bpe_tokenizer):
    base = tiny("llama", len(bpe_tokenizer))
    lora = with_lora(base, "llama")
    assert unwrap_model(lora) is base  # read for its config and forward signature
    assert forward_target(lora) is lora  # called with its adapter hooks


def test_prompt_learning_adapter_falls_back_to_the_plain_path_and_says_why(bpe_tokenizer, small_probe_set, caplog):
    base = tiny("llama", len(bpe_tokenizer))
    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    prompted = peft.get_peft_model(base, config).eval()
    path, reason = choose_path(prompted)
    assert path == "off" and "PROMPT_TUNING adapter prepends virtual tokens" in reason
    probe = FairnessProbe(bpe_tokenizer, small_probe_set[:4], seeds=(0,))
    with caplog.at_level(logging.WARNING, logger="fairness_callback"):
        result = probe.run(prompted)
        probe.run(prompted)
    assert result.info["prefix_sharing"] == "off"
    said = [r.getMessage() for r in caplog.records if "scores on the" in r.getMessage()]
    assert said == [f"fairness probe scores on the plain path: {reason}"]  # once, with the reason


def test_fallback_names_the_model_type(bpe_tokenizer):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "opt",
        vocab_size=len(bpe_tokenizer),
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        word_embed_proj_dim=32,
        max_position_embeddings=256,
    )
    path, reason = choose_path(AutoModelForCausalLM.from_config(config))
    assert path == "off"
    assert reason.startswith("model type 'opt' is not among the tested architectures")


@pytest.mark.slow
def test_compiled_model_is_probed_eagerly_without_compiling(tiny_neox, neox_probe):
    import torch._dynamo

    compiled = torch.compile(tiny_neox)
    assert forward_target(compiled) is tiny_neox and unwrap_model(compiled) is tiny_neox
    torch._dynamo.reset()
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    result = neox_probe.run(compiled)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == frames_before  # nothing compiled
    assert result.info["prefix_sharing"] == "tree"
    assert result.metrics == pytest.approx(neox_probe.run(tiny_neox).metrics, nan_ok=True)
