"""Bake jobs: distil the teacher-prompted model into a LoRA adapter on the student context (baking.md).

The steps: resolve the config (settings.py), collate trajectories from the datasets' rollouts
(collate.py), load the starting model with any parent adapters merged in (models.py), build the
student/teacher token sequences (sequences.py), attach a fresh LoRA adapter, and train with the
forward-KL objective (train.py; loss.py on the hidden states and LM head of model_parts.py, the
teacher's side cached per example by teacher.py, length-grouped micro-batches from batches.py),
saving checkpoints as PEFT adapters and download archives (checkpoints.py).

Before any weight is loaded, the memory plan (plan.py) decides sharding, offload and micro-batching
for the devices there are; a bake on more than one process (every GPU of the machine, and every node
of a multi-node job: distributed.py) is launched with torchrun (launch.py) and shards the model with
FSDP as the config's deepspeed block asks (sharding.py); each process trains its share of every
step (ranks.py) and the main process reports and saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from bakehouse_engine import distributed
from bakehouse_engine.bake import sharding
from bakehouse_engine.bake.checkpoints import CheckpointWriter, GatheringWriter, ParentAdapter
from bakehouse_engine.bake.collate import TargetData, collate
from bakehouse_engine.bake.launch import launch
from bakehouse_engine.bake.model_parts import Heads
from bakehouse_engine.bake.plan import BakePlan, BakeRequest, Devices, ModelShape, plan_bake
from bakehouse_engine.bake.ranks import Ranks
from bakehouse_engine.bake.sequences import build_example
from bakehouse_engine.bake.settings import BakeSettings, lora_config, resolve_settings
from bakehouse_engine.bake.sharding import applied_config, requested_sharding
from bakehouse_engine.bake.train import matmul_parameters, train
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.models import load_model, pick_device, resolve_model_path
from bakehouse_engine.rollout import read_jsonl

if TYPE_CHECKING:
    from bakehouse_engine.context import JobContext


def attach_lora(model: Any, config: Any, settings: BakeSettings) -> Any:
    from peft import get_peft_model

    if settings.activation_checkpointing:
        # Non-reentrant checkpointing needs no input-grad hooks, and the frozen base stays frozen.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    # PEFT keeps the adapter weights in fp32 over a bf16/fp16 base, so small updates are not rounded away.
    return get_peft_model(model, config)


def loss_summary(losses: list[float]) -> dict | None:
    if not losses:
        return None
    return {"latest_loss": losses[-1], "final_loss": losses[-1], "min_loss": min(losses), "max_loss": max(losses)}


def with_student_tools(lines: list[dict], tools: list | None) -> list[dict]:
    """The lines with the student prompt's tools on their conditioned stimulus, which stim lines carry without tools."""
    if not tools:
        return lines
    return [{**line, "conditioned_stimulus": {**line["conditioned_stimulus"], "tools": tools}} for line in lines]


def make_plan(bake: dict, settings: BakeSettings, device: str) -> BakePlan:
    """The memory plan (plan.py) from the model's config alone, for the devices of this job."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model_path(bake["model"]["base_model"]))
    adapter = lora_config((bake["config"].get("model") or {}))
    processes = distributed.processes_per_node(device)
    devices = Devices(
        processes, distributed.device_memory(device, processes), "cpu" if device == "cpu" else "cuda",
        distributed.rendezvous().nodes,
    )
    request = BakeRequest(
        dtype_bytes=torch.finfo(settings.dtype).bits // 8,
        micro_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        activation_checkpointing=settings.activation_checkpointing,
        lora_rank=adapter.r,
        lora_targets=adapter.target_modules,
        sharding=requested_sharding(settings),
        cpu_offload=bool(settings.offload) and device != "cpu",
    )
    return plan_bake(ModelShape.from_config(config), request, devices)


def apply_plan(settings: BakeSettings, plan: BakePlan, device: str) -> None:
    settings.applied = applied_config(settings, plan, device)
    settings.micro_batch_size = plan.micro_batch_size
    settings.gradient_accumulation_steps = plan.gradient_accumulation_steps
    settings.activation_checkpointing = plan.activation_checkpointing


def run(ctx: JobContext) -> dict:
    device = pick_device()
    settings = resolve_settings(ctx.spec["bake"]["config"], device)
    plan = make_plan(ctx.spec["bake"], settings, device)
    apply_plan(settings, plan, device)
    if plan.in_one_process:
        return bake_here(ctx.spec, settings, device, ctx.workdir, ctx.metrics.append, ctx.progress.update, Ranks())
    return launch(ctx, settings, plan)


def bake_here(
    spec: dict, settings: BakeSettings, device: str, workdir: Path, on_metrics: Callable, on_percent: Callable,
    ranks: Ranks, plan: BakePlan | None = None,
) -> dict:
    """The bake in this process: the whole bake, or this process's part of a distributed one (`plan`)."""
    bake = spec["bake"]
    torch.manual_seed(settings.seed)
    datasets = [
        TargetData(d["target"], d["weight"], with_student_tools(read_jsonl(d["rollout_output_uri"]), d.get("student_tools")))
        for d in bake["datasets"]
    ]
    lines = collate(datasets, bake["total_trajectories"], settings.seed)

    parents_dir = workdir / "parents"
    adapter = lora_config(bake["config"].get("model") or {})
    n_matmul = 0

    def with_lora(model: Any) -> Any:
        nonlocal n_matmul
        n_matmul = matmul_parameters(model)  # the model's own linear layers, before the adapter adds its own
        return attach_lora(model, adapter, settings)

    if plan is not None and sharding.uses_fsdp(plan):
        peft_model, tokenizer, ranks.decoder = sharding.load_sharded(bake["model"], settings, plan, ranks, with_lora, parents_dir)
    else:
        model, tokenizer = load_model(bake["model"], settings.dtype_name, device, parents_dir, settings.attn_implementation)
        peft_model = with_lora(model)
        if plan is not None:
            ranks.decoder = sharding.wrap(peft_model, plan, settings, ranks.device)
    examples = [build_example(tokenizer, line, settings.max_length) for line in lines]
    kept = [example for example in examples if example is not None]
    if not kept:
        raise JobFailure(
            f"Every trajectory's prompt is longer than data.max_length ({settings.max_length} tokens); raise it."
        )
    if len(kept) < len(examples):
        settings.unhonoured.append(
            f"data.max_length: {len(examples) - len(kept)} trajectories whose prompt alone reaches "
            f"{settings.max_length} tokens were left out"
        )

    heads = Heads(peft_model)  # the LM head stays whole on every process (sharding.py)
    parents = [
        ParentAdapter(adapter["model_name"], parents_dir / str(index))
        for index, adapter in enumerate(bake["model"].get("adapters") or [])
    ]
    writer: CheckpointWriter | GatheringWriter = CheckpointWriter(
        spec["output_uri"], workdir, bake["model"]["base_model"], bake["model_name_prefix"], parents
    )
    if plan is not None:
        writer = GatheringWriter(ranks, writer if ranks.main else None, peft_model)
    pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
    outcome = train(
        peft_model,
        kept,
        settings,
        pad_id,
        n_matmul,
        writer,
        on_metrics=on_metrics,
        on_progress=lambda step, total: on_percent(100.0 * step / total, 0),
        ranks=ranks,
        heads=heads,
    )
    if outcome.forced_final_checkpoint:
        settings.unhonoured.append("checkpoint: no entry asked for a save, so the final step was saved")
    return {
        "checkpoints": writer.steps,
        "loss": loss_summary(outcome.losses),
        "unhonoured_config": settings.unhonoured,
        "applied_config": settings.applied,
    }
