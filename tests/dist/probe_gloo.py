"""Two gloo ranks run the probe directly (no training framework). Launched by tests/probe/test_distributed.py.

    torchrun --nproc_per_node=2 tests/dist/probe_gloo.py OUTDIR MODE

MODE "equal": both ranks probe the same weights; each writes its metrics, an odd-sized subset's
scores and its forward-call count. MODE "fail": rank 1's model raises in its second forward;
rank 0 must not hang, and both must come back with the same ProbeFailure naming rank 1.
"""

import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.distributed as dist

from support import make_model, make_tokenizer, small_probe


def main(outdir: Path, mode: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    tokenizer = make_tokenizer()
    model = make_model(tokenizer)
    probe = small_probe(tokenizer, sentences=20, seeds=(0, 1))
    probe.batch_size = 8
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    out: dict = {"rank": rank}
    if mode == "equal":
        out["metrics"] = probe.run(model, distributed=True).metrics
        out["forward_calls"] = len(calls)
        subset = probe.score(model, indices=list(range(41)), distributed=True)
        out["subset_ranks"] = subset.ranks.tolist()
    else:
        def fail_second(module, args):
            if rank == 1 and len(calls) == 2:
                raise RuntimeError("injected failure on rank 1")
        model.register_forward_pre_hook(fail_second)
        try:
            out["metrics"] = probe.run(model, distributed=True).metrics
        except RuntimeError as error:
            out["error"] = str(error)
    (outdir / f"rank{rank}.json").write_text(json.dumps(out, allow_nan=True))
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
