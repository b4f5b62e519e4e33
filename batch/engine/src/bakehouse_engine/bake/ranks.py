"""This process's place in a distributed bake: which micro-batches it trains, and what it agrees on with
the others.

Every process holds every example and builds the same optimizer steps (batches.epoch_steps, from the
seed); in each step, process r trains micro-batches r, r + world, r + 2·world, … of the step, so the
processes together train exactly the micro-batches one process would with world × the gradient
accumulation. Each step's loss is divided by the step's response tokens over all processes (known to
every process, since all build the same steps), and multiplied by the world size because FSDP and DDP
average gradients over processes: the update equals the one-process update.

FSDP gathers parameters in every forward and reduces gradients in every backward, so all processes
must run as many passes: a process with fewer micro-batches in a step repeats one of its own with a
weight of 0, and the teacher passes run on every process whenever one of them needs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    decoder: Any = None  # the wrapped decoder of a distributed bake; None: the model's own
    device: torch.device = torch.device("cpu")  # where the backend's collectives take tensors

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, micro_batches: list[list[int]]) -> list[tuple[list[int], float]]:
        """This process's micro-batches of a step, each with its weight (1, or 0 for a repeat)."""
        mine = [(indices, 1.0) for indices in micro_batches[self.rank :: self.world]]
        passes = -(-len(micro_batches) // self.world)
        filler = mine[0][0] if mine else micro_batches[0]
        return mine + [(filler, 0.0)] * (passes - len(mine))

    def any(self, flag: bool) -> bool:
        """Whether `flag` holds on any process."""
        if self.world == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def total(self, values: list[float]) -> list[float]:
        """Sums over processes (for metrics)."""
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def full_state(self, model: Any, names: set[str]) -> dict[str, torch.Tensor]:
        """The parameters `names` (the adapter's), whole, on every process (a collective for sharded ones)."""
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        # Without resharding after forward (SHARD_GRAD_OP), FSDP may leave the last layers' parameters
        # registered in their unsharded form; reshard so every module presents its sharded parameters.
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()
        state = {}
        for name, parameter in model.named_parameters():
            if name in names:
                whole = parameter.full_tensor() if isinstance(parameter, DTensor) else parameter
                state[name] = whole.detach().cpu()
        return state
