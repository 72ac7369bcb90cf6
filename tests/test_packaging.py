"""The package as a registry and a new user see it: the wheel's and sdist's contents, the metadata,
the floors the oldest-versions job tests, and a README whose links work off the repository."""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
REPO_URL = PYPROJECT["project"]["urls"]["Source"]


def _requirement(spec: str) -> tuple[str, str | None]:
    """``("name", "floor")`` of ``"name[extra]>=floor"`` (floor None when there is none)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(?:>=\s*([^,;\s]+))?.*", spec)
    assert match, spec
    return match.group(1).lower().replace("_", "-"), match.group(3)


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The wheel and the sdist, built from the files git tracks (as a clean clone would), with the
    setuptools of this environment (no download)."""
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    code = (
        "import json, pathlib, sys, setuptools.build_meta as b; out = sys.argv[1]; "  # setuptools rewrites sys.argv
        "names = [b.build_wheel(out), b.build_sdist(out)]; pathlib.Path(out, 'names.json').write_text(json.dumps(names))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel, sdist = json.loads((out / "names.json").read_text())
    return {"wheel": out / wheel, "sdist": out / sdist}


def test_wheel_contents_and_metadata(dists):
    import fairness_callback

    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert dists["wheel"].name == f"fairness_callback-{fairness_callback.__version__}-py3-none-any.whl"
    assert {n.split("/")[0] for n in names} == {"fairness_callback", info}  # no tests, benchmarks or docs
    for needed in (
        "fairness_callback/py.typed",
        "fairness_callback/data/builtin_sentences.jsonl",
        "fairness_callback/data/builtin_they.jsonl",
        "fairness_callback/data/BUILTIN.md",
        "fairness_callback/integrations/lightning.py",
        "fairness_callback/demo/run.py",
        f"{info}/licenses/LICENSE",
    ):
        assert needed in names, needed
    assert meta["Version"] == fairness_callback.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta["License"] is None  # the deprecated table form is gone
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and f"Programming Language :: Python :: 3.{sys.version_info.minor}" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it
    assert meta["Keywords"] and meta["Requires-Python"] == ">=3.10"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Source", "Issues", "Changelog", "Documentation"} <= set(urls)
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "fairness-callback = fairness_callback.cli:main" in entry_points
    extras = set(meta.get_all("Provides-Extra"))
    assert {"hf", "lightning", "tensorboard", "wandb", "plot", "demo", "all"} <= extras


def test_sdist_holds_no_tests_and_builds_the_same_package(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = [n.split("/", 1)[1] for n in sdist.getnames() if "/" in n]
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/", "docs/"))]
    for needed in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "fairness_callback/py.typed",
        "fairness_callback/data/builtin_sentences.jsonl",
    ):
        assert needed in names, needed


def test_twine_check_strict(dists):
    pytest.importorskip("twine")
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]), str(dists["sdist"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_oldest_job_pins_every_declared_floor():
    """constraints/oldest.txt is the floors, so a floor cannot drift from what the oldest job tests."""
    from packaging.version import Version

    pins = {}
    for line in (REPO / "constraints" / "oldest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = Version(version.strip())
    project = PYPROJECT["project"]
    declared = list(project["dependencies"])
    for extra in ("hf", "lightning", "tensorboard", "wandb", "plot"):  # what the oldest job installs
        declared += project["optional-dependencies"][extra]
    floors = {name: floor and Version(floor) for name, floor in map(_requirement, declared)}
    assert all(floors.values()), floors  # every dependency has a floor
    # torch: the one CPU build here is 2.13.0, so the job runs that above the declared floor (README, pyproject)
    assert pins.pop("torch") == Version("2.13.0")
    floors.pop("torch")
    assert pins == floors


def test_readme_links_are_absolute_and_name_files_that_exist():
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    assert links
    relative = [link for link in links if not re.match(r"https?://", link)]
    assert relative == []  # a registry page cannot resolve them
    prefixes = (
        f"{REPO_URL}/blob/main/",
        f"{REPO_URL}/tree/main/",
        REPO_URL.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/",
    )
    for link in links:
        for prefix in prefixes:
            if link.startswith(prefix):
                assert (REPO / link[len(prefix) :].split("#")[0]).exists(), link


def test_readme_starts_with_the_demo_and_the_tests_then_how_to_install():
    # The developers' guide: the first lines are the two commands that work on a fresh machine (a
    # clone: the package is not on a registry yet); the install lines of each extra come next.
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.strip()]
    commands = [i for i, line in enumerate(lines) if line.startswith(("pip ", "make "))]
    assert [lines[i].split("#")[0].strip() for i in commands[:2]] == ["make demo", "make test"]
    installs = [i for i in commands if lines[i].startswith("pip install")]
    assert installs and installs[0] < 15 and lines[installs[0]].startswith("pip install fairness-callback")


@pytest.mark.slow
def test_import_time_benchmark_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "import_time.py"), "--repeats", "1", "--warmup", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["loaded"] == []  # none of the optional or slow modules
    assert summary["ratio"] > 0 and len(summary["package_s"]) == 1


def test_every_extra_an_error_names_exists_and_the_demo_extra_holds_what_the_demo_checks():
    from fairness_callback._extras import EXTRAS

    extras = PYPROJECT["project"]["optional-dependencies"]
    for module, (name, extra) in EXTRAS.items():
        assert extra in extras, module
        assert any(_requirement(spec)[0] == name for spec in extras[extra]), (module, extra)
    demo = re.fullmatch(r"fairness-callback\[(.*)\]", extras["demo"][0]).group(1).split(",")
    # demo/run.py checks lightning or accelerate, tensorboard and matplotlib before it trains
    assert {EXTRAS[m][1] for m in ("lightning", "accelerate", "tensorboard", "matplotlib")} <= set(demo)


def test_data_flows_one_way_between_the_folders():
    """data -> probe -> training -> integrations; offline, demo and cli on top: no folder imports one above it."""
    package = Path(__file__).resolve().parents[1] / "fairness_callback"
    above = {
        "data": {"probe", "training", "integrations", "offline", "demo", "cli"},
        "probe": {"training", "integrations", "offline", "demo", "cli"},
        "training": {"integrations", "offline", "demo", "cli"},
        "integrations": {"offline", "demo", "cli"},
    }
    found = []
    for folder, forbidden in above.items():
        for path in sorted((package / folder).glob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                match = re.match(r"\s*from \.\.(\w+)|\s*from fairness_callback\.(\w+)", line)
                target = match and (match.group(1) or match.group(2))
                if target in forbidden:
                    found.append(f"{folder}/{path.name}:{number}: {line.strip()}")
    assert not found, "imports against the flow:\n" + "\n".join(found)
