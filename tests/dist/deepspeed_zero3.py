"""DeepSpeed ZeRO-3 on 2 CPU ranks (gloo): the tracker probes the engine, each rank holding half the weights.

    torchrun --nproc_per_node=2 tests/dist/deepspeed_zero3.py OUTDIR

Each rank probes the untrained model first (not sharded: the reference), then through the
ZeRO-3 engine (parameters partitioned; gathered by DeepSpeed's hooks on the module during each
forward, so every rank must make the same number of forward calls), then again after two
optimizer steps. Each writes ``OUTDIR/rank{r}.json``.
"""

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import deepspeed  # noqa: E402
import torch.distributed as dist  # noqa: E402

from fairness_callback import FairnessTracker  # noqa: E402
from support import make_dataset, make_model, make_tokenizer, small_probe  # noqa: E402


def main(outdir: Path) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    tokenizer = make_tokenizer()
    model = make_model(tokenizer)
    probe = small_probe(tokenizer, sentences=10, seeds=(0, 1))
    reference = probe.run(model).metrics
    config = {"train_batch_size": 4, "train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 3},
              "optimizer": {"type": "AdamW", "params": {"lr": 1e-2, "torch_adam": True}}}
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    tracker = FairnessTracker(every_n_steps=2, probe=probe)
    before = tracker.start(engine)
    data = make_dataset(tokenizer, n=16)
    outcomes = []
    for step in range(2):
        batch = data[4 * step + 2 * rank : 4 * step + 2 * rank + 2]
        engine.backward(engine(**batch).loss)
        engine.step()
        outcomes.append(tracker.step(engine, step + 1))
    report = {"reference": reference, "before": before.metrics, "after": outcomes[-1].metrics,
              "probed": [o.probed for o in outcomes], "engine": type(engine).__name__,
              "partitioned": hasattr(next(engine.module.parameters()), "ds_id"),
              "path": probe.prefix_sharing_for(engine)}
    (outdir / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter shutdown: gloo's teardown can hang at exit on some torch versions
