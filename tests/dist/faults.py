"""One rank's probe fails, two gloo ranks train on: issue #18's faults, injected. Run by tests/training/test_faults_distributed.py.

    torchrun --nproc_per_node=2 tests/dist/faults.py OUTDIR tracker|hf
    python tests/dist/faults.py OUTDIR lightning        (Lightning starts rank 1 itself)

Every scenario of :data:`SCENARIOS` trains the tiny model for 6 steps on both ranks (DDP, so a
rank that left the loop early would hang the other in its next gradient all-reduce), probing at
steps 0, 2, 4 and 6 with ``FairnessEarlyStopping(patience=2)`` on a scripted, growing gap (it stops
at step 4, or at 6 when the probe at 2 failed); the fault strikes the probe's second run (step 2)
on one rank, or every forward above a token budget on one rank (``oom``).
Each rank writes ``OUTDIR/<framework>-rank{r}.json``: per scenario, every probe step's outcome
(probed, failed, failures, stop), the final step, the stop reason and the last metrics.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from support import Fault, ScriptedGapProbe, make_dataset, make_model, make_tokenizer, point_rule  # noqa: E402

from fairness_callback import FairnessEarlyStopping, FairnessTracker, FairnessProbe, ProbeSet  # noqa: E402

#: name: (where, failing rank, in the second probe of a suite)
SCENARIOS = {
    "clean": (None, None, False),
    "path-1": ("path", 1, False),
    "batches-1": ("batches", 1, False),
    "forward-1": ("forward", 1, False),
    "metrics-1": ("metrics", 1, False),
    "forward-0": ("forward", 0, False),
    "suite-second-1": ("forward", 1, True),
    "oom-1": ("oom", 1, False),
}
#: Rank 1's token budget in ``oom-1``: under one batch of its shard, over one prompt.
OOM_BUDGET = 60
GAPS = [0.01, 0.02, 0.03, 0.04]
STEPS = 6


def probes_for(tokenizer, model, scenario: str, rank: int) -> dict:
    """The tracker's ``probe`` / ``probes`` arguments for ``scenario``, with its fault on ``rank``."""
    where, failing, in_suite = SCENARIOS[scenario]
    # The gap grows at every probe that succeeds: patience 2 stops at step 4, or at 6 when step 2 failed.
    gender = ScriptedGapProbe(tokenizer, GAPS)
    if in_suite:
        they = FairnessProbe(tokenizer, ProbeSet.builtin_they()[:6], seeds=(0,))
        if rank == failing:
            Fault(they, model, where, on_run=1)
        return {"probes": {"gender": gender, "they": they}}
    if where is not None and rank == failing:
        Fault(gender, model, where, on_run=1, budget=OOM_BUDGET)
    return {"probe": gender}


def stopping(scenario: str) -> FairnessEarlyStopping:
    monitor = "gender/jsdp/gap" if SCENARIOS[scenario][2] else "jsdp/gap"
    return point_rule(monitor=monitor, patience=2)


def outcome_record(outcome) -> dict:
    return {"step": outcome.step, "probed": outcome.probed, "failed": outcome.failed, "stop": outcome.should_stop,
            "failures": {str(name): {str(r): text for r, text in ranks.items()} for name, ranks in outcome.failures.items()}}


def run_tracker(outdir: Path, scenario: str, tokenizer, rank: int) -> dict:
    model = make_model(tokenizer)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    tracker = FairnessTracker(every_n_steps=2, early_stopping=stopping(scenario),
                              history_path=outdir / "tracker" / scenario / "h.jsonl", **probes_for(tokenizer, model, scenario, rank))
    data = make_dataset(tokenizer, n=64)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-2)
    outcomes = [tracker.start(ddp)]
    step = 0
    for step in range(1, STEPS + 1):
        batch = {k: torch.stack([data[2 * step + rank + 16 * i][k] for i in range(2)]) for k in ("input_ids", "attention_mask", "labels")}
        ddp(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tracker.update_loss({"val_loss": 1.0})
        outcome = tracker.step(ddp, step)
        if outcome.probed:
            outcomes.append(outcome)
        if outcome.should_stop:
            break
    reason = tracker.stopped_reason
    return {"outcomes": [outcome_record(o) for o in outcomes], "final_step": step,
            "stopped_reason": reason.value if reason else None, "last_metrics": tracker.last_metrics,
            "batch_limit": getattr(tracker.probe, "batch_limit", None)}


def run_hf(outdir: Path, scenario: str, tokenizer, rank: int) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from fairness_callback.integrations.hf import HFFairnessCallback

    model = make_model(tokenizer)
    callback = HFFairnessCallback(every_n_steps=2, early_stopping=stopping(scenario), **probes_for(tokenizer, model, scenario, rank))
    seen: list[dict] = []

    class Recorder(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if callback.tracker.last_probed_step == state.global_step:
                seen.append({"step": state.global_step, "stop": bool(control.should_training_stop)})

    args = TrainingArguments(
        output_dir=str(outdir / "hf" / scenario), max_steps=STEPS, per_device_train_batch_size=2, learning_rate=1e-3,
        use_cpu=True, ddp_backend="gloo", report_to=[], disable_tqdm=True, save_strategy="no",
        dataloader_num_workers=0, logging_steps=1, seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=make_dataset(tokenizer, n=64),
                      data_collator=default_data_collator, callbacks=[callback, Recorder()])
    trainer.train()
    reason = callback.stopped_reason
    return {"probes": seen, "final_step": trainer.state.global_step, "stopped_reason": reason.value if reason else None,
            "last_metrics": callback.last_metrics}


def run_lightning(outdir: Path, scenario: str, tokenizer) -> tuple[dict, int]:
    import lightning.pytorch as pl

    from fairness_callback.integrations.lightning import LightningFairnessCallback
    from integrations.test_lightning_callback import TinyLM

    module = TinyLM()
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # Lightning sets it in the processes it starts
    callback = LightningFairnessCallback(every_n_steps=2, early_stopping=stopping(scenario),
                                history_path=outdir / "lightning" / scenario / "h.jsonl",
                                **probes_for(tokenizer, module.model, scenario, rank))
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS, callbacks=[callback],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, default_root_dir=outdir)
    trainer.fit(module)
    reason = callback.stopped_reason
    return ({"final_step": trainer.global_step, "stopped_reason": reason.value if reason else None,
             "last_metrics": callback.last_metrics}, trainer.global_rank)


def main(outdir: Path, framework: str) -> None:
    tokenizer = make_tokenizer()
    report: dict = {}
    if framework == "lightning":
        rank = 0
        for scenario in SCENARIOS:
            report[scenario], rank = run_lightning(outdir, scenario, tokenizer)
    else:
        rank = int(os.environ["RANK"])
        if framework == "tracker":
            dist.init_process_group("gloo")  # the HF Trainer starts its own
        for scenario in SCENARIOS:
            report[scenario] = (run_tracker if framework == "tracker" else run_hf)(outdir, scenario, tokenizer, rank)
    (outdir / f"{framework}-rank{rank}.json").write_text(json.dumps(report, allow_nan=True))
    dist.barrier()  # rank 0 is the process the test waits for: rank 1's file must be written first


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: gloo's teardown can hang at exit on some torch versions.
    os._exit(0)
