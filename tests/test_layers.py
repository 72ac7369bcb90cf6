"""The layers stay in their room: data -> probe -> training -> integrations, with offline, demo and the
command line on top; no module imports one of a layer above its own (read from the source, so an
import inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import fairness_callback

PACKAGE = Path(fairness_callback.__file__).parent
#: Each top-level part of the package and its layer; the top-level private modules (_extras, _numbers)
#: and the package's __init__ serve every layer and are in none.
LAYERS = {
    "data": 0,
    "probe": 1,
    "training": 2,
    "integrations": 3,
    "offline": 4,
    "demo": 4,
    "cli": 4,
    "cli_options": 4,
}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def imported_modules(path: Path, package: str) -> list[tuple[str, int]]:
    """Every fairness_callback module (or name in one) that the file imports, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(target, node.lineno)] + [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.startswith("fairness_callback.")]


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else module.rsplit(".", 1)[0]
        own = layer_of(module)
        if own is None:
            continue
        for name, line in imported_modules(path, package):
            other = layer_of(name)
            if other is not None and other > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not upward, upward


def test_the_check_sees_an_upward_import(tmp_path):
    source = tmp_path / "registry.py"
    source.write_text("def f():\n    from ..cli_options import CliOption\n")
    assert imported_modules(source, "fairness_callback.data") == [
        ("fairness_callback.cli_options", 2),
        ("fairness_callback.cli_options.CliOption", 2),
    ]
    assert layer_of("fairness_callback.cli_options") > layer_of("fairness_callback.data.registry")
