"""Where a distributed bake runs: processes on this machine, the nodes of the job, and the rendezvous.

Processes per node: `BAKEHOUSE_BAKE_PROCESSES` when set (CPU processes on the gloo backend when the
device is the CPU, as the tests do), else every visible GPU (`CUDA_VISIBLE_DEVICES` decides which),
else one CPU process. Nodes: torchrun's standard variables `NNODES`, `NODE_RANK`, `MASTER_ADDR` and
`MASTER_PORT`; on an AWS Batch multi-node parallel job they come from Batch's own
(`AWS_BATCH_JOB_NUM_NODES`, `AWS_BATCH_JOB_NODE_INDEX`, `AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`;
the main node itself has no main-node address and uses its own). Memory of one CPU process:
`BAKEHOUSE_BAKE_DEVICE_MEMORY_GIB`, else an equal share of the host memory.

No torch import at module level: the CLI asks `is_main_node` before any job module loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class Rendezvous:
    nodes: int
    node_rank: int
    master_addr: str
    master_port: int


def rendezvous(env: os._Environ | dict = os.environ) -> Rendezvous:
    nodes = env.get("NNODES") or env.get("AWS_BATCH_JOB_NUM_NODES") or "1"
    node_rank = env.get("NODE_RANK") or env.get("AWS_BATCH_JOB_NODE_INDEX") or "0"
    # Batch gives the main node's address to the other nodes only; the main node is itself.
    master = env.get("MASTER_ADDR") or env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS") or "127.0.0.1"
    return Rendezvous(int(nodes), int(node_rank), master, int(env.get("MASTER_PORT") or DEFAULT_MASTER_PORT))


def is_main_node(env: os._Environ | dict = os.environ) -> bool:
    """Only the main node writes the job's outputs; the others only train."""
    return rendezvous(env).node_rank == 0


def processes_per_node(device: str, env: os._Environ | dict = os.environ) -> int:
    if env.get("BAKEHOUSE_BAKE_PROCESSES"):
        return max(1, int(env["BAKEHOUSE_BAKE_PROCESSES"]))
    if device == "cpu":
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def device_memory(device: str, processes: int, env: os._Environ | dict = os.environ) -> int:
    """Bytes one process's device offers."""
    if device != "cpu":
        import torch

        return min(torch.cuda.get_device_properties(index).total_memory for index in range(torch.cuda.device_count()))
    if env.get("BAKEHOUSE_BAKE_DEVICE_MEMORY_GIB"):
        return int(float(env["BAKEHOUSE_BAKE_DEVICE_MEMORY_GIB"]) * 2**30)
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // processes


def torchrun_args(processes: int, where: Rendezvous) -> list[str]:
    """Arguments of `python -m torch.distributed.run` for this node."""
    if where.nodes == 1:
        return ["--standalone", f"--nproc-per-node={processes}"]
    return [
        f"--nproc-per-node={processes}", f"--nnodes={where.nodes}", f"--node-rank={where.node_rank}",
        f"--master-addr={where.master_addr}", f"--master-port={where.master_port}",
    ]
