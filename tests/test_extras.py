"""Optional dependencies: what ``import fairness_callback`` loads, and the one-line errors of a missing extra.

Each check runs in a fresh interpreter. A missing dependency is made missing there with
``sys.modules[name] = None`` (``import name`` then raises ModuleNotFoundError and
``importlib.util.find_spec`` finds nothing, as when it is not installed); in the core-only venv
of ``make test-core`` (``.ci/run``) they are missing for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

OPTIONAL = ("matplotlib", "PIL", "lightning", "pytorch_lightning", "tensorboard", "wandb", "accelerate")


def run_python(code: str, missing: tuple[str, ...] = (), timeout: int = 180) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in missing)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )


def run_json(code: str, missing: tuple[str, ...] = ()) -> dict:
    result = run_python(code, missing)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_loads_no_optional_dependency_nor_the_slow_ones():
    loaded = run_json("""
        import json, sys
        import fairness_callback
        heavy = ("matplotlib", "PIL", "lightning", "pytorch_lightning", "tensorboard", "wandb", "accelerate",
                 "torchmetrics", "scipy.stats", "scipy.signal", "transformers.trainer")
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """)
    assert loaded == []


def test_star_import_and_dir_with_the_core_only():
    seen = run_json(
        """
        import json
        import fairness_callback
        from fairness_callback import *
        print(json.dumps({"all": fairness_callback.__all__, "probe": FairnessProbe.__name__,
                          "dir": "LightningFairnessCallback" in dir(fairness_callback)}))
    """,
        missing=("lightning", "accelerate"),
    )
    assert "LightningFairnessCallback" not in seen["all"] and "HFFairnessCallback" not in seen["all"]
    assert "FairnessProbe" in seen["all"] and seen["probe"] == "FairnessProbe"
    assert not seen["dir"]


@pytest.mark.parametrize(
    "name, module, extra", [("LightningFairnessCallback", "lightning", "lightning"), ("HFFairnessCallback", "accelerate", "hf")]
)
def test_asking_for_an_adapter_says_which_extra_to_install(name, module, extra):
    # One error however it is asked for (PEP 562's module __getattr__): an ImportError naming the extra.
    line = f'{name} needs {module}: pip install "fairness-callback[{extra}]"'
    seen = run_json(
        f"""
        import json
        import fairness_callback
        out = {{}}
        try:
            from fairness_callback import {name}
        except ImportError as error:
            out["from"] = [type(error).__name__, str(error), error.name]
        try:
            getattr(fairness_callback, {name!r})
        except ImportError as error:
            out["getattr"] = [type(error).__name__, str(error), error.name]
        print(json.dumps(out))
    """,
        missing=(module,),
    )
    assert seen["from"] == seen["getattr"] == ["MissingExtraError", line, module]


def test_the_lightning_module_itself_says_which_extra_to_install():
    result = run_python("import fairness_callback.integrations.lightning", missing=("lightning",))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "fairness_callback._extras.MissingExtraError: fairness_callback's Lightning callback needs lightning: "
        'pip install "fairness-callback[lightning]"'
    )


@pytest.mark.slow
def test_with_the_extras_installed_the_adapters_are_exported():
    pytest.importorskip("lightning")
    pytest.importorskip("accelerate")
    seen = run_json("""
        import json
        import fairness_callback
        from fairness_callback import *
        print(json.dumps([fairness_callback.__all__[-2:], LightningFairnessCallback.__module__, HFFairnessCallback.__module__]))
    """)
    assert seen == [
        ["HFFairnessCallback", "LightningFairnessCallback"],
        "fairness_callback.integrations.lightning",
        "fairness_callback.integrations.hf",
    ]


def cli(args: list[str], missing: tuple[str, ...]) -> subprocess.CompletedProcess:
    return run_python(f"from fairness_callback.cli import main\nsys.exit(main({args!r}))", missing, timeout=300)


def test_report_without_matplotlib_is_one_line(tmp_path):
    result = cli(["report", str(tmp_path / "history.jsonl"), "--out", str(tmp_path / "report")], ("matplotlib",))
    assert result.returncode == 1
    assert result.stderr.strip() == 'fairness-callback: error: report needs matplotlib: pip install "fairness-callback[plot]"'
    assert not (tmp_path / "report").exists()


def test_replay_with_lm_eval_tasks_without_lm_eval_is_one_line(tmp_path):
    # Before any checkpoint is read: the path does not even exist.
    result = cli(["replay", str(tmp_path / "run"), "--history", str(tmp_path / "h.jsonl"), "--lm-eval-task", "x"], ("lm_eval",))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'fairness-callback: error: replay --lm-eval-task needs lm-eval: pip install "fairness-callback[eval]"'
    )
    assert not (tmp_path / "h.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("framework, missing", [("hf", ("matplotlib",)), ("lightning", ("lightning", "tensorboard"))])
def test_demo_checks_what_it_needs_before_it_trains(tmp_path, framework, missing):
    import importlib.util

    needs = ["lightning" if framework == "lightning" else "accelerate", "tensorboard", "matplotlib"]
    names = ", ".join(m for m in needs if m in missing or importlib.util.find_spec(m) is None)
    result = cli(["demo", "--framework", framework, "--out", str(tmp_path / "demo")], missing)
    assert result.returncode == 1
    assert result.stderr.strip() == f'fairness-callback: error: the demo needs {names}: pip install "fairness-callback[demo]"'
    assert "fairness-callback demo:" not in result.stdout  # nothing was built or trained
    assert not (tmp_path / "demo").exists()


def test_version():
    from importlib.metadata import version

    import fairness_callback

    result = subprocess.run(
        [sys.executable, "-m", "fairness_callback.cli", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fairness-callback {fairness_callback.__version__}"
    assert version("fairness-callback") == fairness_callback.__version__


def test_a_gguf_file_without_the_gguf_package_names_the_extra():
    seen = run_json(
        """
        import json
        from fairness_callback.offline.model_loading import require_gguf
        try:
            require_gguf("model.gguf")
        except ImportError as error:
            print(json.dumps([type(error).__name__, str(error)]))
    """,
        missing=("gguf",),
    )
    assert seen == [
        "MissingExtraError",
        """loading the GGUF file 'model.gguf' needs gguf: pip install "fairness-callback[gguf]\"""",
    ]
