"""The bake's `deepspeed` block mapped onto PyTorch FSDP (FSDP2, `fully_shard`), and the model wrapped
accordingly for a distributed bake.

| deepspeed field                          | applied as                                                   |
|------------------------------------------|--------------------------------------------------------------|
| zero_optimization.stage 3                | `full`: fully_shard, parameters resharded after each forward  |
| zero_optimization.stage 2                | `grad_op`: fully_shard with reshard_after_forward=False       |
|                                          | (gradients and optimizer state sharded, SHARD_GRAD_OP)        |
| zero_optimization.stage 0 / 1            | `replicate`: DistributedDataParallel                          |
| (no stage)                               | `full`                                                       |
| offload_param / offload_optimizer        | FSDP CPUOffloadPolicy: parameters, gradients and the          |
|                                          | optimizer step in host memory (FSDP offloads them together)   |
| activation_checkpoint_cpu_offload        | saved activations in host memory (autograd save_on_cpu)       |

The memory plan (plan.py) may choose more than the config asked for, to fit; result.json's
`applied_config` says what was applied for each field and each change the plan made.

What is wrapped is the decoder (the layers below the LM head), the module the objective calls:
every decoder layer is its own FSDP unit and the decoder the root. The LM head stays whole on each
process (frozen; loss.py applies its weight in float32), so LoRA on the LM head is refused in a
distributed bake.
"""

from __future__ import annotations

from typing import Any

import torch

from bakehouse_engine.bake.plan import BakePlan
from bakehouse_engine.bake.settings import BakeSettings
from bakehouse_engine.errors import JobFailure

STAGE_SHARDING = {0: "replicate", 1: "replicate", 2: "grad_op", 3: "full"}
DESCRIPTIONS = {
    "full": "FSDP full sharding (parameters, gradients and optimizer state split across processes)",
    "grad_op": "FSDP SHARD_GRAD_OP (gradients and optimizer state split across processes, parameters kept whole within a step)",
    "replicate": "replicated data parallel (DistributedDataParallel: every process holds the whole model, gradients are averaged)",
}


def requested_sharding(settings: BakeSettings) -> str:
    return STAGE_SHARDING.get(settings.zero_stage, "full") if settings.zero_stage is not None else "full"


def applied_config(settings: BakeSettings, plan: BakePlan, device: str) -> list[str]:
    """How each deepspeed/offload field was applied, and what the plan changed to fit, for result.json."""
    notes = []
    processes = f"{plan.world_size} process{'es' if plan.world_size > 1 else ''}"
    if settings.zero_stage is not None:
        if plan.world_size == 1 and not plan.cpu_offload:
            notes.append(f"deepspeed.zero_optimization.stage {settings.zero_stage}: one process holds the whole model; nothing to shard")
        else:
            notes.append(f"deepspeed.zero_optimization.stage {settings.zero_stage}: {DESCRIPTIONS[plan.sharding]} over {processes}")
    for key in settings.offload:
        if device == "cpu":
            notes.append(f"deepspeed.zero_optimization.{key}: the bake runs on the CPU; everything is in host memory already")
        elif plan.cpu_offload:
            notes.append(f"deepspeed.zero_optimization.{key}: FSDP CPU offload (parameters, gradients and the optimizer step in host memory)")
        else:
            notes.append(f"deepspeed.zero_optimization.{key}: not needed to fit, so kept on the GPUs (faster); the plan estimated "
                         f"{plan.per_device_bytes / 2**30:.1f} of {plan.device_bytes / 2**30:.0f} GiB per GPU")
    if settings.activation_cpu_offload:
        notes.append("activation_checkpoint_cpu_offload: activations saved for the backward pass kept in host memory (save_on_cpu)")
    return notes + [f"plan: {change}" for change in plan.changes]


def wrap(model: Any, plan: BakePlan, settings: BakeSettings, device: torch.device) -> Any:
    """Shards (or replicates) the PEFT model's decoder across the process group; returns the module to
    call for hidden states."""
    from peft.tuners.lora import LoraLayer

    from bakehouse_engine.bake.model_parts import causal_lm

    if isinstance(causal_lm(model).get_output_embeddings(), LoraLayer):
        raise JobFailure(
            "LoRA on lm_head is not supported in a multi-process bake; leave lm_head out of target_modules "
            "or run the bake on one device (BAKEHOUSE_BAKE_PROCESSES=1)."
        )
    decoder = causal_lm(model).get_decoder()
    if plan.sharding == "replicate" and not plan.cpu_offload:
        from torch.nn.parallel import DistributedDataParallel

        # The rotary buffers are the same everywhere: no broadcast in each forward.
        return DistributedDataParallel(
            decoder, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    options: dict[str, Any] = {
        "reshard_after_forward": plan.sharding == "full",
        "offload_policy": CPUOffloadPolicy() if plan.cpu_offload else OffloadPolicy(),
    }
    if settings.dtype != torch.float32:
        # PEFT keeps LoRA weights in float32 over a bf16 base; FSDP gathers them in the model's dtype and
        # reduces gradients in float32.
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=settings.dtype, reduce_dtype=torch.float32)
    for layer in decoder.layers:
        fully_shard(layer, **options)
    fully_shard(decoder, **options)
    return decoder
