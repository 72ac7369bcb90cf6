"""FSDP2 (``fully_shard``) on CPU with gloo: the probe on a sharded GPT-NeoX, on every rank.

Run by tests/integrations/test_lightning_callback.py as
``python -m torch.distributed.run --standalone --nproc_per_node=2 tests/dist/fsdp2_probe.py OUTDIR``.
Two parts, one after the other, each sharding every layer of the tiny GPT-NeoX and the root:

- ``loop``: a plain torch loop driving ``FairnessTracker``: two optimizer steps on each rank's
  own batches, ``tracker.step`` after each (due at step 2).
- ``lightning``: Lightning's ``ModelParallelStrategy`` (FSDP2 in ``configure_model``), two steps
  with the LightningFairnessCallback probing every 2 (``last_metrics`` is the step-2 probe).

Each rank writes its metrics of both parts to ``OUTDIR/rank{r}.json``; rank 0 saves the gathered
full weights to ``OUTDIR/{part}_weights.pt`` so the test can probe them in one process.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import ModelParallelStrategy
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import make_dataset, make_model, small_probe  # noqa: E402
from integrations.test_lightning_callback import TinyLM, shared_tokenizer  # noqa: E402

from fairness_callback import FairnessTracker  # noqa: E402
from fairness_callback.integrations.lightning import LightningFairnessCallback  # noqa: E402


def shard(model: torch.nn.Module, mesh=None) -> None:
    """``fully_shard`` each GPT-NeoX layer, then the root."""
    for layer in model.gpt_neox.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def save_full_weights(model: torch.nn.Module, path: Path) -> None:
    """Gather the sharded weights (a collective: every rank calls it) and save them on rank 0."""
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() == 0:
        torch.save(full, path)


def loop(outdir: Path) -> dict[str, float]:
    """Two plain-torch optimizer steps on the sharded model, ``FairnessTracker.step`` after each."""
    rank = dist.get_rank()
    tokenizer = shared_tokenizer()
    model = make_model(tokenizer)
    shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = make_dataset(tokenizer, n=16)
    tracker = FairnessTracker(every_n_steps=2, probe=small_probe(tokenizer), history_path=outdir / "loop_history.jsonl")
    outcomes = []
    for step in range(2):
        batch = data[4 * step + 2 * rank : 4 * step + 2 * rank + 2]
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        outcomes.append(tracker.step(model, step + 1))
    assert [o.probed for o in outcomes] == [False, True], outcomes
    save_full_weights(model, outdir / "loop_weights.pt")
    return outcomes[-1].metrics


class ShardedTinyLM(TinyLM):
    """TinyLM sharded by ``ModelParallelStrategy`` over its data-parallel mesh."""

    def configure_model(self) -> None:
        shard(self.model, mesh=self.device_mesh["data_parallel"])


def lightning(outdir: Path) -> dict[str, float]:
    """Two steps under ``ModelParallelStrategy`` with the LightningFairnessCallback; its last probe's metrics."""
    callback = LightningFairnessCallback(every_n_steps=2, probe=small_probe(shared_tokenizer()), history_path=outdir / "history.jsonl")
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
        max_steps=2, callbacks=[callback], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, default_root_dir=outdir,
    )
    module = ShardedTinyLM()
    trainer.fit(module)
    save_full_weights(module.model, outdir / "lightning_weights.pt")
    return callback.last_metrics


def main(outdir: Path) -> None:
    # A rank that never reaches a collective fails the others after this long instead of hanging.
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    report = {"loop": loop(outdir), "lightning": lightning(outdir)}
    (outdir / f"rank{dist.get_rank()}.json").write_text(json.dumps(report))
    dist.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: gloo's teardown can hang at exit on some torch versions.
    os._exit(0)
