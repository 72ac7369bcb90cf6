"""Lightning DDP on CPU (2 processes, gloo) with the LightningFairnessCallback; run by tests/integrations/test_lightning_callback.py.

``python tests/dist/lightning_ddp.py OUTDIR``. The script builds ``Trainer(strategy="ddp",
devices=2)`` itself and Lightning starts rank 1 by running it again. Two fits, one after the other:

- ``watch``: 4 steps, probing every 2; rank 0 saves the final weights to ``OUTDIR/final_weights.pt``.
- ``stop``: a scripted gap that only rank 0's early stopping acts on (at step 6), so rank 1 stops
  through the vote alone.

Each rank writes ``OUTDIR/rank{r}.json``: per mode, every probe's step and metrics,
``last_metrics``, the final ``global_step`` and ``stopped_reason``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from support import ScriptedGapProbe, small_probe, point_rule  # noqa: E402
from integrations.test_lightning_callback import TinyLM, shared_tokenizer  # noqa: E402

from fairness_callback import FairnessEarlyStopping  # noqa: E402
from fairness_callback.integrations.lightning import LightningFairnessCallback  # noqa: E402

#: Per-rank gap scripts of the ``stop`` mode: rank 0's best is at step 2 and grows at 4 and 6
#: (patience 2 runs out at step 6); rank 1's never grows.
GAPS_BY_RANK = ([0.3, 0.1, 0.2, 0.25], [0.3, 0.1, 0.1, 0.1])


class RankScriptedGapProbe(ScriptedGapProbe):
    """A :class:`ScriptedGapProbe` whose script depends on the rank it runs on."""

    def run(self, model, distributed: bool = False):
        self.gaps = list(GAPS_BY_RANK[dist.get_rank()])
        return super().run(model, distributed=distributed)


class ProbeRecorder(pl.Callback):
    """Keeps each probe's step and metrics; it must come after the LightningFairnessCallback in the list."""

    def __init__(self, fairness: LightningFairnessCallback) -> None:
        self.fairness = fairness
        self.probes: list[dict] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self._record(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._record(trainer.global_step)

    def _record(self, step: int) -> None:
        probed = self.fairness.tracker.last_probed_step == step
        if probed and (not self.probes or self.probes[-1]["step"] != step):
            self.probes.append({"step": step, "metrics": self.fairness.last_metrics})


def fit(mode: str, outdir: Path) -> tuple[pl.Trainer, TinyLM, dict]:
    """One DDP fit in ``mode`` (``watch`` or ``stop``); returns the trainer, the module and the rank's report."""
    tokenizer = shared_tokenizer()
    if mode == "watch":
        fairness = LightningFairnessCallback(every_n_steps=2, probe=small_probe(tokenizer), history_path=outdir / "watch.jsonl")
        max_steps = 4
    else:
        fairness = LightningFairnessCallback(
            every_n_steps=2, probe=RankScriptedGapProbe(tokenizer, gaps=[0.0]),
            early_stopping=point_rule(patience=2), history_path=outdir / "stop.jsonl",
        )
        max_steps = 10
    recorder = ProbeRecorder(fairness)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=max_steps, callbacks=[fairness, recorder],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, default_root_dir=outdir,
    )
    module = TinyLM()
    trainer.fit(module)
    reason = fairness.stopped_reason
    report = {
        "probes": recorder.probes, "last_metrics": fairness.last_metrics, "global_step": trainer.global_step,
        "stopped_reason": reason.value if reason is not None else None,
    }
    return trainer, module, report


def main(outdir: Path) -> None:
    trainer, module, watch = fit("watch", outdir)
    if trainer.global_rank == 0:
        torch.save(module.model.state_dict(), outdir / "final_weights.pt")
    trainer, _, stop = fit("stop", outdir)
    (outdir / f"rank{trainer.global_rank}.json").write_text(json.dumps({"watch": watch, "stop": stop}))
    # Rank 0 is the process the test waits for: it must not exit before rank 1 has written its file.
    dist.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: gloo's teardown can hang at exit on some torch versions.
    os._exit(0)
