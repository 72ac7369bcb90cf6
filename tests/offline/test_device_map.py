"""A model larger than one device (issue #30): ``--device-map`` loading, and the probe on a dispatched model.

On the CPU the split is forced with ``max_memory``: accelerate fills the CPU up to its cap and
offloads the remaining layers to the disk, where its hooks load each layer's weights for its forward
(the parameters of an offloaded layer are on ``meta``). Three splits: the layers after the first on
the disk (``auto`` with a small ``cpu`` cap), the whole model on the disk (a cap below one layer:
``hf_device_map == {"": "disk"}``, every parameter on ``meta``), and the input embedding on the disk
(a mapping: the probe must not feed the model where its first parameter says, ``meta``). Each scores
every prompt bit for bit as the model on one device, on each scoring path (token tree, key/value
cache, plain batches).

Two CPU "devices" cannot be made, measured with torch 2.13 (CPU build), transformers 5.25 and
accelerate 1.16: torch has one CPU device (a tensor made on ``"cpu:1"`` reports ``cpu``);
``from_pretrained`` refuses ``"cpu:1"`` in a device map (a TypeError while loading); an
accelerator index (``max_memory={0: ..., "cpu": ...}`` or a map value ``1``) on a machine without one
is dropped with accelerate's warning "Device 0 is not available" or refused ("Cannot access
accelerator device when none is available"). So the CPU's split is CPU + disk; a split over GPUs is
the same hooks with other execution devices, checked here by the choices it drives (where inputs go,
how the last position's logits are kept) on a model whose hooks name two GPUs.
"""

from __future__ import annotations

import gc
import json
import math
from types import SimpleNamespace

import pytest
import torch

from fairness_callback.cli import main
from fairness_callback.offline.model_loading import (
    Placement,
    load_causal_lm,
    load_model_and_tokenizer,
    parse_device_map,
    parse_max_memory,
    parse_size,
)
from fairness_callback.offline.replay import Checkpoint, CheckpointError, Loader
from fairness_callback.probe import scoring
from fairness_callback.training.history import read_history
from support import make_model, make_tokenizer, small_probe, small_probe_set

pytest.importorskip("accelerate")


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def _save(model, directory, tokenizer=None, safetensors: bool = True):
    """``save_pretrained`` (safetensors), or the config and a ``pytorch_model.bin`` (weights accelerate
    cannot read in place: offloading them needs an offload folder)."""
    if safetensors:
        model.save_pretrained(directory)
    else:
        directory.mkdir(parents=True)
        model.config.save_pretrained(directory)
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """A tiny GPT-NeoX (2 layers, about 0.9 MB in float32) saved with its tokenizer, and its size in bytes."""
    model = make_model(tokenizer).eval()
    directory = _save(model, tmp_path_factory.mktemp("model") / "model", tokenizer)
    return directory, sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.fixture(scope="module")
def probe(tokenizer):
    return small_probe(tokenizer, sentences=20, seeds=(0, 1))


def _equal(a: dict, b: dict) -> bool:
    """The same keys and values, NaN equal to NaN (bit for bit otherwise)."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


SPLITS = {
    # the CPU holds 85% of the model; accelerate keeps room for the largest layer, the rest goes to the disk
    "layers on disk": lambda size: {"device_map": "auto", "max_memory": {"cpu": int(size * 0.85)}},
    # less than the largest layer: nothing fits, the whole model is offloaded
    "all on disk": lambda size: {"device_map": "sequential", "max_memory": {"cpu": size // 10}},
    # a mapping that offloads the first layer (and the head) and keeps the middle
    "embedding on disk": lambda size: {
        "device_map": {"gpt_neox.embed_in": "disk", "gpt_neox.emb_dropout": "cpu", "gpt_neox.layers": "cpu"}
        | {"gpt_neox.final_layer_norm": "cpu", "gpt_neox.rotary_emb": "cpu", "lm_head": "disk"}
    },
}


PATHS = ("tree", "cache", "off")


def _scores(probe, model, path):
    probe.prefix_sharing = path
    try:
        return probe.score(model)
    finally:
        probe.prefix_sharing = "auto"


@pytest.fixture(scope="module")
def whole_scores(saved, probe):
    """The model on one device, scored on each path."""
    whole = load_causal_lm(str(saved[0]))
    return {path: _scores(probe, whole, path) for path in PATHS}


@pytest.mark.parametrize("split", SPLITS)
def test_a_model_split_over_cpu_and_disk_scores_as_on_one_device(saved, probe, whole_scores, split):
    directory, size = saved
    model = load_causal_lm(str(directory), Placement(**SPLITS[split](size)))
    placed = model.hf_device_map
    assert "disk" in placed.values(), placed
    if split == "all on disk":
        assert placed == {"": "disk"} and {p.device.type for p in model.parameters()} == {"meta"}
    else:
        assert "cpu" in placed.values()
    if split == "embedding on disk":
        assert model.get_input_embeddings().weight.device.type == "meta"
    assert scoring.model_device(model) == torch.device("cpu")  # where its hooks run the embedding
    assert "dispatched by accelerate" in scoring.choose_path(model)[1]
    for path in PATHS:
        got, expected = _scores(probe, model, path), whole_scores[path]
        assert got.prefix_sharing == path
        assert torch.equal(got.ranks.isnan(), expected.ranks.isnan()), path
        assert torch.equal(got.ranks.nan_to_num(), expected.ranks.nan_to_num()), path
        assert torch.equal(got.logprobs.nan_to_num(), expected.logprobs.nan_to_num()), path
    assert _equal(probe.result(got).metrics, probe.result(whole_scores["off"]).metrics)


def test_a_model_that_fits_is_not_dispatched(saved):
    """``auto`` with room for everything puts the model on one device: no hooks, no ``hf_device_map``."""
    directory, size = saved
    model = load_causal_lm(str(directory), Placement(device_map="auto", max_memory={"cpu": size * 4}))
    assert getattr(model, "hf_device_map", None) is None and scoring.dispatch_devices(model) == []
    assert scoring.model_device(model) == torch.device("cpu")


def test_bin_weights_need_an_offload_folder_of_their_own(tmp_path, tokenizer, probe):
    """Weights accelerate cannot read in place are re-saved into the offload folder: each load into a
    folder of its own inside it (two loads of a series never share files), removed with its model."""
    first, second = make_model(tokenizer, seed=1).eval(), make_model(tokenizer, seed=2).eval()
    dirs = [_save(m, tmp_path / f"checkpoint-{i}", safetensors=False) for i, m in enumerate((first, second), 1)]
    size = sum(p.numel() * p.element_size() for p in first.parameters())
    memory = {"cpu": int(size * 0.85)}
    with pytest.raises(ValueError, match="offload_folder.*--offload-folder DIR"):
        load_causal_lm(str(dirs[0]), Placement(device_map="auto", max_memory=memory))
    offload = tmp_path / "offload"
    models = [load_causal_lm(str(d), Placement(device_map="auto", max_memory=memory, offload_folder=offload)) for d in dirs]
    folders = sorted(offload.iterdir())
    assert len(folders) == 2 and all(any(f.glob("*.safetensors")) for f in folders)
    for model, reference in zip(models, (first, second)):
        assert "disk" in model.hf_device_map.values()
        assert _equal(probe.run(model).metrics, probe.run(reference).metrics)
    del models, model
    gc.collect()
    assert list(offload.iterdir()) == []


def test_a_dispatch_over_two_gpus_feeds_the_first_layer_and_keeps_logits_by_slice(tokenizer):
    """The hooks of a model dispatched over two GPUs (their execution devices set by hand: this machine
    has none) decide where the probe's inputs go (the embedding's device, not its first parameter's,
    ``meta`` when offloaded) and how it keeps the last positions: a tensor of positions would be
    moved to the first GPU by the top hook while the model indexes the last layer's output on the
    second, so an int is passed (the slice; ``tests/probe/test_precision.py`` shows it scores as the
    tensor does)."""
    model = make_model(tokenizer).eval()
    assert scoring.forward_options(model)["logits_to_keep_tensor"]
    model._hf_hook = SimpleNamespace(execution_device="cuda:1")  # accelerate's top hook, on the main device
    model.gpt_neox.embed_in._hf_hook = SimpleNamespace(hooks=[SimpleNamespace(execution_device="cuda:0")])
    model.gpt_neox.layers[1]._hf_hook = SimpleNamespace(execution_device="cuda:1")
    model.lm_head._hf_hook = SimpleNamespace(execution_device=torch.device("cuda", 1))
    assert scoring.model_device(model) == torch.device("cuda", 0)
    assert scoring.dispatch_devices(model) == [torch.device("cuda", 1), torch.device("cuda", 0)]
    assert not scoring.forward_options(model)["logits_to_keep_tensor"]
    del model.gpt_neox.embed_in._hf_hook  # a module offloaded whole: its hook is the one at the top
    assert scoring.model_device(model) == torch.device("cuda", 1)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0=20GiB,1=20GiB,cpu=60GiB", {0: 20 * 2**30, 1: 20 * 2**30, "cpu": 60 * 2**30}),
        ("cpu=800KB, disk=1tb", {"cpu": 800_000, "disk": 10**12}),
        ("CPU=1000000", {"cpu": 1_000_000}),
        ('{"0": "1.5GB", "mps": 1024}', {0: 1_500_000_000, "mps": 1024}),
    ],
)
def test_parse_max_memory(text, expected):
    assert parse_max_memory(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("cpu=lots", "cpu=lots: expected a size such as 20GiB"),
        ("gpu0=1GB", "gpu0=1GB: unknown device 'gpu0': expected an accelerator index"),
        ("cpu", "'cpu' is not DEVICE=SIZE"),
        ("cpu=1GB,cpu=2GB", "device 'cpu' is given twice"),
        ("", "expected DEVICE=SIZE"),
        ("{nope", "not a JSON object"),
        ("cpu=-1GB", "expected a size"),
    ],
)
def test_parse_max_memory_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_max_memory(text)


def test_parse_size_and_device_map():
    assert parse_size("20GiB") == 20 * 2**30 and parse_size("500mb") == 500 * 10**6 and parse_size(7) == 7
    for strategy in ("auto", "balanced", "balanced_low_0", "sequential"):
        assert parse_device_map(strategy) == strategy
    assert parse_device_map("model.embed_tokens=0, model.layers=1,lm_head=cpu,=disk") == {
        "model.embed_tokens": 0,
        "model.layers": 1,
        "lm_head": "cpu",
        "": "disk",
    }
    assert parse_device_map('{"model.layers": "cuda:1", "lm_head": 0}') == {"model.layers": "cuda:1", "lm_head": 0}
    with pytest.raises(ValueError, match="one device for the whole model is the device"):
        parse_device_map("cuda:0")
    with pytest.raises(ValueError, match="module 'lm_head': unknown device 'gpu'"):
        parse_device_map("lm_head=gpu")


def test_placement_and_loader_refuse_two_placements(tokenizer):
    with pytest.raises(ValueError, match="a device and a device map both"):
        Placement(device="cpu", device_map="auto")
    with pytest.raises(ValueError, match="max_memory and offload_folder go with a device map"):
        Placement(max_memory={"cpu": 10})
    with pytest.raises(ValueError, match="device 'cuda' and a device map both"):
        Loader(device="cuda", device_map="auto")
    with pytest.raises(ValueError, match="expected one of auto"):
        Loader(device_map="everywhere")
    assert Placement(device_map="auto", max_memory="cpu=1GB").max_memory == {"cpu": 10**9}
    assert Placement().main_device == torch.device("cpu")
    loader = Loader(device_map="auto", model_factory=lambda: make_model(tokenizer))
    with pytest.raises(CheckpointError, match="a Lightning .ckpt built by --model-factory cannot take one"):
        loader(Checkpoint("run/epoch=0-step=2.ckpt", 2, "lightning"))


@pytest.fixture
def small_default(monkeypatch):
    """The command line's default probe set (the built-in one, 560 sentences) cut to 24 sentences."""
    from fairness_callback.data import ProbeSet

    small = small_probe_set(24)
    monkeypatch.setattr(ProbeSet, "default", classmethod(lambda cls: small))


def test_probe_command_with_a_device_map_prints_the_same_numbers(saved, tmp_path, small_default, capsys):
    directory, size = saved
    common = ["probe", "--model", str(directory), "--seeds", "0,1"]
    assert main([*common, "--json", str(tmp_path / "one.json")]) == 0
    split = ["--device-map", "auto", "--max-memory", f"cpu={int(size * 0.85)}", "--json", str(tmp_path / "split.json")]
    assert main([*common, *split]) == 0
    one, split_result = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "split"))
    assert split_result["info"]["num_prompts"] == one["info"]["num_prompts"] == 96  # 24 sentences, 2 seeds
    assert _equal(split_result["metrics"], one["metrics"])
    assert [r["option_probs"] for r in split_result["records"]] == [r["option_probs"] for r in one["records"]]
    model, _ = load_model_and_tokenizer(str(directory), device_map="auto", max_memory=f"cpu={int(size * 0.85)}")
    assert "disk" in model.hf_device_map.values()  # the command's split is a real one


def test_replay_command_with_a_device_map_records_the_same_numbers(tmp_path, tokenizer, small_default):
    """A series of a safetensors and a .bin checkpoint (the second re-saved into --offload-folder)."""
    series = tmp_path / "run"
    first, second = make_model(tokenizer, seed=3).eval(), make_model(tokenizer, seed=4).eval()
    _save(first, series / "checkpoint-2", tokenizer)
    _save(second, series / "checkpoint-4", safetensors=False)
    size = sum(p.numel() * p.element_size() for p in first.parameters())
    common = ["replay", str(series), "--seeds", "0"]
    assert main([*common, "--history", str(tmp_path / "one.jsonl")]) == 0
    offload = tmp_path / "offload"
    split = ["--device-map", "sequential", "--max-memory", f"cpu={int(size * 0.85)}", "--offload-folder", str(offload)]
    assert main([*common, "--history", str(tmp_path / "split.jsonl"), *split]) == 0
    one, split_lines = ([r for r in read_history(tmp_path / h) if r["event"] == "probe"] for h in ("one.jsonl", "split.jsonl"))
    assert [r["step"] for r in split_lines] == [r["step"] for r in one] == [2, 4]
    for a, b in zip(split_lines, one):
        metrics = {k: v for k, v in a.items() if "/" in k and isinstance(v, float)}
        assert metrics and _equal(metrics, {k: b[k] for k in metrics}), a["step"]
    assert one[0]["jsdp/gap"] != one[1]["jsdp/gap"]  # two models: the second did not reuse the first's offload
    assert not any(offload.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-memory", "cpu=lots", "--device-map", "auto"], "argument --max-memory: cpu=lots: expected a size"),
        (["--device-map", "cuda:0"], "argument --device-map: expected one of auto"),
        (["--device", "cpu", "--device-map", "auto"], "--device and --device-map both place the model"),
        (["--max-memory", "cpu=1GB"], "--max-memory goes with --device-map"),
        (["--offload-folder", "off"], "--offload-folder goes with --device-map"),
    ],
)
def test_device_map_errors_name_the_option(saved, args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["probe", "--model", str(saved[0]), *args])
    assert message in str(exit_info.value.code) + capsys.readouterr().err


def test_replay_refuses_a_device_map_for_lightning_checkpoints(tmp_path, saved):
    (tmp_path / "epoch=0-step=2.ckpt").write_bytes(b"")
    argv = ["replay", str(tmp_path / "epoch=0-step=2.ckpt"), "--history", str(tmp_path / "h.jsonl")]
    argv += ["--model-factory", "support:tiny_model_factory", "--tokenizer", str(saved[0]), "--device-map", "auto"]
    with pytest.raises(SystemExit, match="Lightning .ckpt files .* take --device"):
        main(argv)
