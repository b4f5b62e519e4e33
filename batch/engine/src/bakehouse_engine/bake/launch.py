"""A bake on several processes: torchrun starts them on this node (`python -m torch.distributed.run`,
with the rendezvous of distributed.py), each runs `worker` on the job this process planned, and the
main process's result comes back through a file in the job's work dir.

The job (spec, resolved settings, plan) is handed to the workers as a pickle in the work dir, which
only this engine writes and reads. Only the main process (rank 0) writes what the user sees: metrics,
progress and checkpoints under the output prefix; result.json stays with the CLI of the main node.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bakehouse_engine import distributed
from bakehouse_engine.errors import JobFailure, failure_sentence

if TYPE_CHECKING:
    from bakehouse_engine.bake.plan import BakePlan
    from bakehouse_engine.bake.settings import BakeSettings
    from bakehouse_engine.context import JobContext

JOB_FILE = "distributed-job.pickle"
RESULT_FILE = "distributed-result.json"

log = logging.getLogger("bakehouse_engine")


def launch(ctx: JobContext, settings: BakeSettings, plan: BakePlan) -> dict:
    (ctx.workdir / JOB_FILE).write_bytes(pickle.dumps({"spec": ctx.spec, "settings": settings, "plan": plan}))
    where = distributed.rendezvous()
    command = [
        sys.executable, "-m", "torch.distributed.run", *distributed.torchrun_args(plan.world_size // where.nodes, where),
        "-m", "bakehouse_engine.bake.launch", str(ctx.workdir),
    ]
    log.info("bake on %d processes (%d per node): %s", plan.world_size, plan.world_size // where.nodes, " ".join(command))
    exit_code = subprocess.run(command, check=False).returncode
    if not distributed.is_main_node():
        if exit_code:
            raise JobFailure(f"This node's part of the distributed bake failed (exit code {exit_code}); its log has the error.")
        return {}
    result_file = ctx.workdir / RESULT_FILE
    if not result_file.is_file():
        raise JobFailure(
            f"A process of the distributed bake stopped before it finished (exit code {exit_code}); the job log has its error."
        )
    result = json.loads(result_file.read_text())
    if result.get("error"):
        raise JobFailure(result["error"])
    return result


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
