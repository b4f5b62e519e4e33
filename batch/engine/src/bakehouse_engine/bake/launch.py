"""A bake on several processes: torchrun starts them on this node (`python -m torch.distributed.run`,
with the rendezvous of distributed.py), each runs worker.py on the job this process planned, and the
main process's result comes back through a file in the job's work dir.

The job (spec, resolved settings, plan) is handed to the workers as a pickle in the work dir, which
only this engine writes and reads. Only the main process (rank 0) writes what the user sees: metrics,
progress and checkpoints under the output prefix; result.json stays with the CLI of the main node.
"""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from typing import TYPE_CHECKING

from bakehouse_engine import distributed
from bakehouse_engine.errors import JobFailure

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
        "-m", "bakehouse_engine.bake.worker", str(ctx.workdir),
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
