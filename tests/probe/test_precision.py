"""The probe in the precisions people fine-tune in (issue #20).

A frozen LM head (every PEFT / LoRA model: ``get_peft_model`` freezes the base) used to get the
final hidden state sliced to the last position(s) as a non-contiguous view; ``torch.matmul``
then broadcast the head's weight over the batch (``bmm``), which in bfloat16 / float16 copies the
whole head once per row. The scorer now passes ``logits_to_keep`` as a tensor of positions, so the
head sees a contiguous input and runs one ``mm``. Checked here without timing:

- every path hands the head a contiguous input and no ``bmm`` over the vocabulary runs, on a bf16
  base with fp32 adapters (PEFT's default), with bf16 adapters, a frozen bare bf16 model, fp32;
- every path's logits (the plain path's last-position slice, the tree path's leaf slots, the cache
  path's suffix logits) on a bf16 base with fp32 adapters and on a plain bf16 model equal full
  logits computed in float32 on the same weights, within bf16 rounding;
- float32 scores are bit for bit those of the int slice (gender, Winogender, BBQ), and a frozen
  float32 model now scores bit for bit like the same model with a trainable head.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from fairness_callback import FairnessProbe, ProbeSet
from fairness_callback.probe import scoring

peft = pytest.importorskip("peft")

PATHS = ("tree", "cache", "off")


def tiny_llama(vocab_size: int, seed: int = 0, head_scale: float = 1.0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
    ).eval()
    with torch.no_grad():  # logits of a realistic spread (a random head gives std ~0.15), so rounding shows
        model.lm_head.weight.mul_(head_scale)
    return model


def with_lora(model, adapter_dtype_fp32: bool = True):
    """``get_peft_model`` with random B (so the adapter matters); fp32 adapters is PEFT's default."""
    config = peft.LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)  # the same adapter weights whatever their dtype
    return peft.get_peft_model(model, config, autocast_adapter_dtype=adapter_dtype_fp32).eval()


@pytest.fixture(scope="module")
def probe(bpe_tokenizer):
    full = ProbeSet.builtin()
    return FairnessProbe(
        bpe_tokenizer, ProbeSet([full[i] for i in range(0, len(full), 40)][:12], name="p12"), seeds=(0, 1), batch_size=16
    )


def variants(vocab_size: int) -> dict:
    base = tiny_llama(vocab_size, head_scale=20.0)
    bf16 = copy.deepcopy(base).to(torch.bfloat16)
    frozen = copy.deepcopy(bf16).requires_grad_(False)
    return {
        "bf16": bf16,
        "bf16 frozen": frozen,
        "bf16 + fp32 LoRA": with_lora(copy.deepcopy(bf16)),
        "bf16 + bf16 LoRA": with_lora(copy.deepcopy(bf16), adapter_dtype_fp32=False),
        "fp16 + fp32 LoRA": with_lora(copy.deepcopy(base).to(torch.float16)),
        "fp32 + fp32 LoRA": with_lora(copy.deepcopy(base)),
    }


@pytest.fixture(scope="module")
def models(bpe_tokenizer):
    return variants(len(bpe_tokenizer))


def path_logits(model, probe: FairnessProbe, path: str) -> torch.Tensor:
    """[prompts, V] float32 logits of ``path``, by prompt index, through the scorer's own functions."""
    accepts = scoring.forward_options(model)
    target = scoring.forward_target(model)
    encoded = probe.encoded
    out = torch.full((len(probe), scoring.unwrap_model(model).config.vocab_size), float("nan"))
    with torch.no_grad():
        if path == "tree":
            for batch in encoded.tree_batches(probe.batch_size):
                out[batch.indices] = scoring.tree_last_logits(target, batch, accepts["logits_to_keep_tensor"]).float()
        elif path == "cache":
            for batch in encoded.prefix_batches(probe.batch_size):
                out[batch.indices] = scoring.prefix_last_logits(target, batch, accepts).float()
        else:
            for batch in encoded.batches(probe.batch_size):
                out[batch.indices] = scoring.last_token_logits(target, batch, accepts).float()
    return out


def float32_reference(model, probe: FairnessProbe, position: int = -1) -> torch.Tensor:
    """Full logits (no ``logits_to_keep``) of the same weights upcast to float32, at the last real
    position (``position=-2``: one token earlier)."""
    upcast = copy.deepcopy(model).float()
    out = torch.empty(len(probe), scoring.unwrap_model(model).config.vocab_size)
    with torch.no_grad():
        for batch in probe.encoded.batches(probe.batch_size):
            logits = upcast(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids, use_cache=False
            ).logits
            assert logits.shape[1] == batch.input_ids.shape[1]  # full logits: every position
            out[batch.indices] = logits[:, position, :].float()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "name", ["bf16", "bf16 frozen", "bf16 + fp32 LoRA", "bf16 + bf16 LoRA", "fp16 + fp32 LoRA", "fp32 + fp32 LoRA"]
)
def test_head_runs_one_mm_on_a_contiguous_input(models, probe, name, path):
    """The cause of issue #20, checked directly: what reaches the head, and which matmul runs."""
    model = models[name]
    head = scoring.unwrap_model(model).get_output_embeddings()
    seen = []
    hook = head.register_forward_pre_hook(lambda module, args: seen.append((args[0].is_contiguous(), tuple(args[0].shape))))
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            path_logits(model, probe, path)
    finally:
        hook.remove()
    assert seen and all(contiguous for contiguous, _ in seen), seen
    vocab = head.weight.shape[0]
    bmm_over_vocab = [
        event.input_shapes
        for event in prof.events()
        if event.name == "aten::bmm" and any(vocab in shape for shape in event.input_shapes if shape)
    ]
    assert not bmm_over_vocab
    mm_over_vocab = [
        event
        for event in prof.events()
        if event.name in ("aten::mm", "aten::addmm") and any(vocab in s for s in event.input_shapes if s)
    ]
    assert mm_over_vocab  # the head ran, as one mm per forward


def test_the_int_slice_took_bmm_on_a_frozen_head(models, probe, monkeypatch):
    """The test above can fail: with the int ``logits_to_keep`` of before, the frozen bf16 head takes bmm."""
    monkeypatch.setattr(scoring, "keep_positions", lambda count, length, accepts, device: count)
    model = models["bf16 + fp32 LoRA"]
    vocab = scoring.unwrap_model(model).config.vocab_size
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        path_logits(model, probe, "off")
    assert any(event.name == "aten::bmm" and any(vocab in s for s in event.input_shapes if s) for event in prof.events())


#: Tolerance on logits: this many units of the dtype's rounding (eps) times the largest |logit|.
ULPS = 8


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["bf16", "bf16 + fp32 LoRA"])
def test_paths_equal_float32_full_logits(models, probe, name, path):
    """Issue #20 item 4: each path on a bf16 base (bare, and with fp32 adapters) against float32 full logits."""
    model = models[name]
    reference = float32_reference(model, probe)
    logits = path_logits(model, probe, path)
    assert torch.isfinite(logits).all()
    bound = ULPS * torch.finfo(torch.bfloat16).eps * reference.abs().max()
    error = (logits - reference).abs().max()
    assert error <= bound, (float(error), float(bound))
    # What the metrics read: the answer tokens' full-vocabulary log-probs, and their order.
    answers = probe.encoded.answer_ids
    ref_lp = torch.log_softmax(reference, -1)[:, answers]
    lp = torch.log_softmax(logits, -1)[:, answers]
    assert (lp - ref_lp).abs().max() <= 2 * bound
    # The bound is tight enough to see a wrong position: the logits one token earlier are far off.
    shifted = float32_reference(model, probe, position=-2)
    assert (shifted - reference).abs().max() > 4 * bound


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
def test_adapter_dtype_gives_the_same_probe(models, probe, path):
    """fp32 adapters and bf16 adapters over the same bf16 base: the same answers within bf16 rounding."""
    fp32_adapters = path_logits(models["bf16 + fp32 LoRA"], probe, path)
    bf16_adapters = path_logits(models["bf16 + bf16 LoRA"], probe, path)
    reference = float32_reference(models["bf16 + fp32 LoRA"], probe)
    bound = ULPS * torch.finfo(torch.bfloat16).eps * reference.abs().max()
    assert (fp32_adapters - bf16_adapters).abs().max() <= 2 * bound


# -- float32: bit for bit --------------------------------------------------------------------------
def int_slice(monkeypatch):
    """The scorer as before issue #20: ``logits_to_keep`` as an int, the head gets a sliced view."""
    monkeypatch.setattr(scoring, "keep_positions", lambda count, length, accepts, device: count)


def probe_sets(bpe_tokenizer, request) -> dict[str, FairnessProbe]:
    full = ProbeSet.builtin()
    sets = {
        "gender": FairnessProbe(
            bpe_tokenizer, ProbeSet([full[i] for i in range(0, len(full), 23)][:24], name="g24"), seeds=(0, 1), batch_size=32
        )
    }
    for name, fixture, load in (
        ("winogender", "winogender_dir", ProbeSet.from_winogender),
        ("bbq", "bbq_dir", lambda d: ProbeSet.from_bbq(d, ["Religion"])),
    ):
        try:
            directory = request.getfixturevalue(fixture)
        except pytest.skip.Exception:
            continue
        loaded = load(directory)
        sets[name] = FairnessProbe(
            bpe_tokenizer,
            ProbeSet([loaded[i] for i in range(0, len(loaded), len(loaded) // 20)][:20], name=name),
            seeds=(0, 1),
            batch_size=32,
        )
    return sets


@pytest.mark.parametrize("path", PATHS)
def test_float32_scores_bit_for_bit(gpt2_tokenizer, request, monkeypatch, path):
    """gender, Winogender and BBQ on a float32 Llama and GPT-NeoX: the tensor positions give exactly the
    int slice's ranks and log-probs; a frozen head (as under PEFT) now gives exactly the trainable one's."""
    from support import make_model

    tokenizer = gpt2_tokenizer  # GPT-2's real BPE: BBQ's letters need it
    models = {"llama": tiny_llama(len(tokenizer), seed=3), "neox": make_model(tokenizer, seed=0).eval()}
    sets = probe_sets(tokenizer, request)
    expected = {"gender"} | {
        name
        for name, marker in (("winogender", "winogender/all_sentences.tsv"), ("bbq", "bbq/Religion.jsonl"))
        if (Path(__file__).resolve().parents[3] / "shared" / marker).is_file()
    }
    assert set(sets) >= expected
    for task, base_probe in sets.items():
        probe = FairnessProbe(tokenizer, base_probe.probe_set, seeds=(0, 1), batch_size=32, prefix_sharing=path)
        assert probe.prefix_sharing_for(models["llama"]) == path
        for name, model in models.items():
            now = probe.score(model)
            frozen = copy.deepcopy(model).requires_grad_(False)
            now_frozen = probe.score(frozen)
            with monkeypatch.context() as patch:
                int_slice(patch)
                before = probe.score(model)
                before_frozen = probe.score(frozen)
            for what, a, b in (("tensor vs int slice", now, before), ("frozen vs trainable head", now_frozen, now)):
                assert torch.equal(a.ranks.nan_to_num(-1), b.ranks.nan_to_num(-1)), (task, name, what)
                assert torch.equal(a.logprobs.nan_to_num(-1), b.logprobs.nan_to_num(-1)), (task, name, what)
            assert torch.isfinite(before_frozen.logprobs).all()  # (the int slice's bmm: its own rounding)


def test_int_logits_to_keep_without_a_tensor_annotation(tiny_neox, small_probe_set, bpe_tokenizer):
    """A model whose ``logits_to_keep`` takes an int only still gets the int."""

    class IntOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = inner.config
            self.kept = []

        def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep: int = 0, use_cache=None):
            assert isinstance(logits_to_keep, int)
            self.kept.append(logits_to_keep)
            return self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                logits_to_keep=logits_to_keep,
                use_cache=use_cache,
            )

    wrapped = IntOnly(tiny_neox)
    options = scoring.forward_options(wrapped)
    assert options["logits_to_keep"] and not options["logits_to_keep_tensor"]
    assert scoring.forward_options(tiny_neox)["logits_to_keep_tensor"]
    probe = FairnessProbe(bpe_tokenizer, small_probe_set, seeds=(0,), prefix_sharing="off")
    assert probe.score(wrapped).ranks.isfinite().all() and set(wrapped.kept) == {1}
