"""One process of a distributed bake, as torchrun starts it (`python -m bakehouse_engine.bake.worker
<workdir>`): it joins the process group, trains its share of the job launch.py planned, and, on the
main process, writes metrics, progress and checkpoints and leaves its result for launch.py."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from pathlib import Path

from bakehouse_engine.bake.launch import JOB_FILE, RESULT_FILE
from bakehouse_engine.errors import JobFailure, failure_sentence

log = logging.getLogger("bakehouse_engine")


def worker(workdir: Path) -> int:
    """One process of a distributed bake, as torchrun starts it."""
    import torch
    import torch.distributed as dist

    from bakehouse_engine.bake import bake_here
    from bakehouse_engine.bake.ranks import Ranks
    from bakehouse_engine.models import pick_device
    from bakehouse_engine.outputs import Metrics, Progress

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    job = pickle.loads((workdir / JOB_FILE).read_bytes())
    spec, settings, plan = job["spec"], job["settings"], job["plan"]
    device = pick_device()
    if device == "cpu":
        backend, torch_device = "gloo", torch.device("cpu")
    else:
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        backend, torch_device, device = "nccl", torch.device("cuda", local_rank), f"cuda:{local_rank}"
    dist.init_process_group(backend)
    ranks = Ranks(dist.get_rank(), dist.get_world_size(), device=torch_device)
    rank_dir = workdir / f"rank{ranks.rank}"
    metrics = Metrics(spec["output_uri"], rank_dir) if ranks.main else None
    progress = Progress(spec["output_uri"], (metrics,)) if metrics else None
    try:
        result = bake_here(
            spec, settings, device, rank_dir,
            metrics.append if metrics else _ignore, progress.update if progress else _ignore, ranks, plan,
        )
        if metrics:
            metrics.close()
    except JobFailure as error:
        result = {"error": str(error)}
    except Exception as error:  # noqa: BLE001 — the main process's failure must reach result.json
        log.exception("bake process %d failed", ranks.rank)
        result = {"error": failure_sentence(error, "bake")}
    if ranks.main:
        (workdir / RESULT_FILE).write_text(json.dumps(result))
    dist.destroy_process_group()
    return 1 if "error" in result else 0


def _ignore(*_args: object) -> None:
    """What a non-main process does with metrics and progress."""


if __name__ == "__main__":
    sys.exit(worker(Path(sys.argv[1])))
