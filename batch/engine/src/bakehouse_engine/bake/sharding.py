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

Loading for FSDP (`load_sharded`): only the main process reads the weights, into host memory, with any
parent adapters merged and the new LoRA attached; every process builds the same model on the `meta`
device, shards it, allocates its shard, and receives its shard of the main process's weights
(`set_model_state_dict` with `broadcast_from_rank0`). No device ever holds the whole model, and the
adapter starts from the main process's initialisation everywhere. DDP replicates the model anyway, so
there every process loads it as a one-process bake does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from bakehouse_engine.bake.plan import BakePlan
from bakehouse_engine.bake.ranks import Ranks
from bakehouse_engine.bake.settings import BakeSettings
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.models import _DTYPES as DTYPE_NAMES

STAGE_SHARDING = {0: "replicate", 1: "replicate", 2: "grad_op", 3: "full"}
DESCRIPTIONS = {
    "full": "FSDP full sharding (parameters, gradients and optimizer state split across processes)",
    "grad_op": "FSDP SHARD_GRAD_OP (gradients and optimizer state split across processes, parameters kept whole within a step)",
    "replicate": "replicated data parallel (DistributedDataParallel: every process holds the whole model, gradients are averaged)",
}


def requested_sharding(settings: BakeSettings) -> str:
    return STAGE_SHARDING.get(settings.zero_stage, "full")


def applied_config(settings: BakeSettings, plan: BakePlan, device: str) -> list[str]:
    """How each deepspeed/offload field was applied, and what the plan changed to fit, for result.json."""
    notes = []
    processes = f"{plan.world_size} process{'es' if plan.world_size > 1 else ''}"
    if settings.zero_stage is not None:
        if plan.in_one_process:
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


def uses_fsdp(plan: BakePlan) -> bool:
    """Whether the plan shards the model with FSDP (CPU offload is FSDP's, whatever the sharding)."""
    return plan.sharding != "replicate" or plan.cpu_offload


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
    if not uses_fsdp(plan):
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


def read_weights(spec_model: dict, settings: BakeSettings, parents_dir: Path) -> tuple[Any, Any]:
    """The whole model in host memory, parent adapters merged, and its tokenizer (the main process only)."""
    from bakehouse_engine.models import load_model

    dtype_name = next(name for name, dtype in DTYPE_NAMES.items() if dtype == settings.dtype)
    model, tokenizer = load_model(spec_model, dtype_name, "cpu", parents_dir, settings.attn_implementation)
    # fp16 is kept on GPUs only, and load_model reads it as fp32 on the CPU: the shards take the bake's dtype.
    return model.to(settings.dtype), tokenizer


def load_sharded(
    spec_model: dict, settings: BakeSettings, plan: BakePlan, ranks: Ranks, attach: Callable[[Any], Any], parents_dir: Path,
) -> tuple[Any, Any, Any]:
    """The PEFT model sharded across the processes, its tokenizer and the decoder to call (module docstring)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from bakehouse_engine.models import resolve_model_path

    path = resolve_model_path(spec_model["base_model"])
    full_state: dict[str, torch.Tensor] = {}
    buffers: dict[str, torch.Tensor] = {}
    if ranks.main:
        source, tokenizer = read_weights(spec_model, settings, parents_dir)
        source = attach(source)
        full_state, buffers = source.state_dict(), dict(source.named_buffers())
        del source
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
    extra = {"attn_implementation": settings.attn_implementation} if settings.attn_implementation else {}
    with torch.device("meta"):
        model = attach(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=settings.dtype, **extra))
    decoder = wrap(model, plan, settings, ranks.device)
    model.to_empty(device="cpu" if plan.cpu_offload else ranks.device)
    set_model_state_dict(model, full_state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full_state
    _copy_unsaved_buffers(model, buffers, ranks)
    return model, tokenizer, decoder


def _copy_unsaved_buffers(model: Any, buffers: dict[str, torch.Tensor], ranks: Ranks) -> None:
    """Buffers outside the state dict (rotary `inv_freq`, computed at construction) came out of `to_empty`
    uninitialised; the main process's values reach every process, whatever the architecture computes."""
    for module_name, module in model.named_modules():
        for name in sorted(module._non_persistent_buffers_set):
            buffer = getattr(module, name)
            if buffer is None:
                continue
            key = f"{module_name}.{name}" if module_name else name
            value = buffers[key].to(ranks.device) if ranks.main else torch.empty_like(buffer, device=ranks.device)
            torch.distributed.broadcast(value, src=0)
            module.register_buffer(name, value.to(buffer.device), persistent=False)
            if hasattr(module, "original_inv_freq") and name == "inv_freq":
                # transformers' rotary embeddings keep the construction-time frequencies for dynamic RoPE.
                module.original_inv_freq = module.inv_freq
