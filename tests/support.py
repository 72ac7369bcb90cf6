"""Helpers shared by the callback tests and the multi-process scripts in tests/dist/.

Importable from a subprocess script with ``sys.path.insert(0, <repo>/tests)``.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from fairness_callback import FairnessProbe, ProbeResult, ProbeSet
from fairness_callback.toy import TokenBlocks, probe_texts, tiny_gpt_neox, train_bpe_tokenizer


def make_tokenizer():
    """The BPE tokenizer of the tests (trained on the built-in probe's prompts; deterministic)."""
    return train_bpe_tokenizer(probe_texts(), vocab_size=1000)


def make_model(tokenizer, seed: int = 0):
    return tiny_gpt_neox(len(tokenizer), hidden_size=64, num_layers=2, seed=seed)


def make_dataset(tokenizer, n: int = 256, length: int = 32) -> TokenBlocks:
    return TokenBlocks(tokenizer, probe_texts()[:n], length=length)


def small_probe(tokenizer, sentences: int = 20, seeds: Sequence[int] = (0,)) -> FairnessProbe:
    full = ProbeSet.builtin()
    step = len(full) // sentences
    return FairnessProbe(tokenizer, ProbeSet([full[i * step] for i in range(sentences)], name="test"), seeds=seeds)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter's bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ScriptedGapProbe(FairnessProbe):
    """A real probe whose ``jsdp/gap`` (and abs gap) is replaced by a script, one value per run.

    The model is still scored (collectives and all), so only the stopping input is forced.
    """

    def __init__(self, tokenizer, gaps: Sequence[float], **kwargs) -> None:
        base = small_probe(tokenizer)
        super().__init__(tokenizer, base.probe_set, seeds=base.config.seeds, **kwargs)
        self.gaps = list(gaps)
        self.calls = 0

    def run(self, model, distributed: bool = False) -> ProbeResult:
        result = super().run(model, distributed=distributed)
        gap = self.gaps[min(self.calls, len(self.gaps) - 1)]
        self.calls += 1
        result.metrics["jsdp/gap"] = gap
        result.metrics["jsdp/abs_gap"] = abs(gap)
        return result


class FailingProbe(FairnessProbe):
    """A real probe that raises on the runs listed in ``fail_on`` (0-based)."""

    def __init__(self, tokenizer, fail_on: Sequence[int] = (0,), **kwargs) -> None:
        base = small_probe(tokenizer)
        super().__init__(tokenizer, base.probe_set, seeds=base.config.seeds, **kwargs)
        self.fail_on = set(fail_on)
        self.calls = 0

    def run(self, model, distributed: bool = False) -> ProbeResult:
        call = self.calls
        self.calls += 1
        if call in self.fail_on:
            raise RuntimeError(f"probe failure injected by the test (run {call})")
        return super().run(model, distributed=distributed)


def tiny_model_factory():
    """A model factory for replaying Lightning ``.ckpt`` files (``--model-factory support:tiny_model_factory``)."""
    return make_model(make_tokenizer())
