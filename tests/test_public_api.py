"""The public API: the top-level names docs/contributing.md lists, ``__all__`` in every module, and
no words of the machine the package was built on in what a user reads."""

from __future__ import annotations

import importlib
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import fairness_callback

REPO = Path(__file__).resolve().parents[1]
OPTIONAL_FRAMEWORK = {
    "fairness_callback.integrations.hf": "accelerate",
    "fairness_callback.integrations.lightning": "lightning",
    "fairness_callback.integrations.lightning_config": "lightning",
    "fairness_callback.integrations.lightning_config_ptl": "pytorch_lightning",
    "fairness_callback.integrations.axolotl": "axolotl",
    "fairness_callback.integrations.axolotl_args": "pydantic",
}


def public_modules() -> list[str]:
    names = ["fairness_callback"]
    for info in pkgutil.walk_packages(fairness_callback.__path__, "fairness_callback."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def documented_top_level() -> set[str]:
    text = (REPO / "docs" / "contributing.md").read_text()
    section = text.split("## What is public", 1)[1].split("Every other module", 1)[0]
    return set(re.findall(r"`([A-Za-z_]+)`", section)) - {"MissingExtraError", "ImportError"}


def test_the_top_level_exports_what_contributing_md_lists():
    assert set(fairness_callback.__all__) == documented_top_level()
    assert len(fairness_callback.__all__) == len(set(fairness_callback.__all__))


@pytest.mark.parametrize("module", public_modules())
def test_every_public_module_names_its_public_names(module):
    needs = OPTIONAL_FRAMEWORK.get(module)
    if needs:
        pytest.importorskip(needs)
    imported = importlib.import_module(module)
    assert isinstance(getattr(imported, "__all__", None), list), f"{module} has no __all__"
    missing = [name for name in imported.__all__ if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"
    assert len(imported.__all__) == len(set(imported.__all__))


def test_old_top_level_names_still_import_with_a_warning():
    from fairness_callback.probe.metrics import jsd_parts

    with pytest.warns(DeprecationWarning, match=r"import it from fairness_callback\.probe\.metrics"):
        assert fairness_callback.jsd_parts is jsd_parts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from fairness_callback import FairnessProbe  # noqa: F401  (a public name: no warning)


def test_no_build_environment_words_where_a_user_reads():
    words = re.compile(r"this machine|was lent|no GPU was|before #\d+|this sandbox", re.IGNORECASE)
    files = [REPO / "README.md", REPO / "pyproject.toml", REPO / "Makefile"]
    files += sorted((REPO / "fairness_callback").rglob("*.py"))
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if words.search(line)
    ]
    assert not found, found
