"""Bake jobs: distil the teacher-prompted model into a LoRA adapter on the student context (baking.md).

The steps: resolve the config (settings.py), collate trajectories from the datasets' rollouts
(collate.py), load the starting model with any parent adapters merged in (models.py), build the
student/teacher token sequences (sequences.py), attach a fresh LoRA adapter, and train with the
forward-KL objective (train.py; loss.py on the hidden states and LM head of model_parts.py, the
teacher's side cached per example by teacher.py, length-grouped micro-batches from batches.py),
saving checkpoints as PEFT adapters and download archives (checkpoints.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from bakehouse_engine.bake.checkpoints import CheckpointWriter, ParentAdapter
from bakehouse_engine.bake.collate import TargetData, collate
from bakehouse_engine.bake.sequences import build_example
from bakehouse_engine.bake.settings import BakeSettings, lora_config, resolve_settings
from bakehouse_engine.bake.train import matmul_parameters, train
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.models import load_model, pick_device
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


def run(ctx: JobContext) -> dict:
    bake = ctx.spec["bake"]
    config = bake["config"]
    device = pick_device()
    settings = resolve_settings(config, device)
    torch.manual_seed(settings.seed)

    datasets = [
        TargetData(d["target"], d["weight"], with_student_tools(read_jsonl(d["rollout_output_uri"]), d.get("student_tools")))
        for d in bake["datasets"]
    ]
    lines = collate(datasets, bake["total_trajectories"], settings.seed)

    parents_dir = ctx.workdir / "parents"
    model, tokenizer = load_model(bake["model"], settings.dtype_name, device, parents_dir, settings.attn_implementation)
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

    n_matmul = matmul_parameters(model)
    peft_model = attach_lora(model, lora_config(config.get("model") or {}), settings)
    parents = [
        ParentAdapter(adapter["model_name"], parents_dir / str(index))
        for index, adapter in enumerate(bake["model"].get("adapters") or [])
    ]
    writer = CheckpointWriter(ctx.output_uri, ctx.workdir, bake["model"]["base_model"], bake["model_name_prefix"], parents)
    pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
    outcome = train(
        peft_model,
        kept,
        settings,
        pad_id,
        n_matmul,
        writer,
        on_metrics=ctx.metrics.append,
        on_progress=lambda step, total: ctx.progress.update(100.0 * step / total, 0),
    )
    if outcome.forced_final_checkpoint:
        settings.unhonoured.append("checkpoint: no entry asked for a save, so the final step was saved")
    return {"checkpoints": writer.steps, "loss": loss_summary(outcome.losses), "unhonoured_config": settings.unhonoured}
