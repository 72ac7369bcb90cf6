"""The HF Trainer with HFFairnessCallback on two gloo CPU ranks. Launched by tests/integrations/test_hf_callback.py.

    torchrun --nproc_per_node=2 tests/dist/hf_torchrun.py OUTDIR

Two trainings in one launch (starting torchrun and importing transformers costs more than training):

- ``probe``: 4 steps, a real probe every 2 steps. Each rank writes the step and logged metrics of
  every probe, its ``last_metrics`` and final global step to ``OUTDIR/probe-rank{r}.json``; rank 0
  saves the final weights to ``OUTDIR/final.pt``.
- ``stop``: up to 10 steps; only rank 0's scripted gap grows, so only its policy wants to stop (at
  step 4). Each rank writes its final global step, ``stopped_reason`` and stop message to
  ``OUTDIR/stop-rank{r}.json``.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.distributed as dist
from transformers import Trainer, TrainingArguments, default_data_collator

from fairness_callback import FairnessEarlyStopping
from fairness_callback.integrations.hf import HFFairnessCallback
from support import ScriptedGapProbe, make_dataset, make_model, make_tokenizer, small_probe, point_rule


def train(outdir: Path, name: str, tokenizer, callback: HFFairnessCallback, max_steps: int) -> Trainer:
    """Train the tiny model for ``max_steps`` steps on 2 gloo ranks with ``callback``."""
    args = TrainingArguments(
        output_dir=str(outdir / name), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=1e-3,
        use_cpu=True, ddp_backend="gloo", report_to=[], disable_tqdm=True, save_strategy="no",
        dataloader_num_workers=0, logging_steps=1, seed=0,
    )
    trainer = Trainer(model=make_model(tokenizer), args=args, train_dataset=make_dataset(tokenizer, n=64),
                      data_collator=default_data_collator, callbacks=[callback])
    trainer.train()
    return trainer


def main(outdir: Path) -> None:
    tokenizer = make_tokenizer()

    callback = HFFairnessCallback(every_n_steps=2, probe=small_probe(tokenizer))
    trainer = train(outdir, "probe", tokenizer, callback, max_steps=4)
    rank = trainer.args.process_index
    probes = [{"step": h["step"], "metrics": {k: v for k, v in h.items() if k.startswith("fairness/")}}
              for h in trainer.state.log_history if "fairness/jsdp/gap" in h]
    (outdir / f"probe-rank{rank}.json").write_text(json.dumps(
        {"probes": probes, "last_metrics": callback.last_metrics, "global_step": trainer.state.global_step}))
    if rank == 0:
        torch.save(trainer.model.state_dict(), outdir / "final.pt")

    gaps = [0.01, 0.02, 0.03] if rank == 0 else [0.03, 0.02, 0.01]
    callback = HFFairnessCallback(every_n_steps=2, probe=ScriptedGapProbe(tokenizer, gaps),
                                early_stopping=point_rule(patience=2))
    trainer = train(outdir, "stop", tokenizer, callback, max_steps=10)
    (outdir / f"stop-rank{rank}.json").write_text(json.dumps(
        {"global_step": trainer.state.global_step, "stopped_reason": callback.stopped_reason,
         "message": callback.tracker.stop_message}))

    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    # The interpreter's own shutdown after the HF Trainer sometimes aborts (about 1 run in 7).
    os._exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
