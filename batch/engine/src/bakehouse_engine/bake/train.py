"""The bake's training loop: LoRA on one PEFT model, teacher = the same model with the adapter off.

Per micro-batch (baking.md §3.1): the teacher's distribution over the examples' response positions
comes from the teacher cache (teacher.py: a pass inside `disable_adapter()` without gradients the
first time an example is seen, kept for later epochs); the student pass runs the student sequences
with the adapter on; the loss is the per-token KL over the response positions (loss.py), with the LM
head in float32 on the gathered response positions only, a chunk of positions at a time. The step's
loss is the per-token mean over every response token of its micro-batches (Σ token KL / Σ response
tokens), so gradient accumulation gives the same update as one large batch. Micro-batches group
examples of similar length (batches.py).

Metrics rows (metrics.jsonl) average the iterations since the previous row: `tokens_per_s` counts
student tokens per second of `iter_time` (the whole iteration); `step_time` is forward, backward and
optimizer only; TFLOP/s are estimates from matmul parameters N: 4N per student token (6N with
activation checkpointing) plus 2N per teacher token that ran through the model (baking.md §7.2).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from transformers import get_scheduler

from bakehouse_engine.bake.batches import MicroBatch, epoch_steps
from bakehouse_engine.bake.checkpoints import CheckpointPlan, CheckpointWriter, GatheringWriter
from bakehouse_engine.bake.loss import head_kl
from bakehouse_engine.bake.model_parts import Heads, decoder
from bakehouse_engine.bake.ranks import Ranks
from bakehouse_engine.bake.sequences import TrainingExample
from bakehouse_engine.bake.settings import MAX_GRAD_NORM, BakeSettings
from bakehouse_engine.bake.teacher import TeacherCache


def matmul_parameters(model: torch.nn.Module) -> int:
    """N of baking.md §7.2: weights of every linear layer, the LM head included."""
    return sum(module.weight.numel() for module in model.modules() if isinstance(module, torch.nn.Linear))


class MetricsWindow:
    """Accumulates iterations between metrics rows."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.iters = 0
        self.loss = 0.0
        self.iter_time = 0.0
        self.step_time = 0.0
        self.student_tokens = 0
        self.flops = 0.0
        self.seqlen_sum = 0
        self.sequences = 0

    def row(self, step: int, lr: float, epoch: float) -> dict:
        return {
            "iter": step,
            "loss": self.loss / self.iters,
            "train_loss": self.loss / self.iters,
            "lr": lr,
            "epoch": round(epoch, 4),
            "seqlen": self.seqlen_sum / max(self.sequences, 1),
            "iter_time": self.iter_time / self.iters,
            "step_time": self.step_time / self.iters,
            "tokens_per_s": self.student_tokens / max(self.iter_time, 1e-9),
            "iter_tflops": self.flops / max(self.iter_time, 1e-9) / 1e12,
            "step_tflops": self.flops / max(self.step_time, 1e-9) / 1e12,
        }


@dataclass
class TrainingOutcome:
    losses: list[float]  # the loss of each metrics row
    steps: int
    forced_final_checkpoint: bool  # no checkpoint entry asked for a save, so the final step was saved


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def accumulate_gradients(
    model: Any, batches: list[MicroBatch], teachers: TeacherCache, heads: Heads, settings: BakeSettings,
    device: torch.device, offload: Callable, step_tokens: int | None = None, ranks: Ranks | None = None,
) -> tuple[float, int]:
    """Teacher and student passes over this process's micro-batches of one step; returns their part of
    the step's per-token KL and the teacher tokens that ran through the model.

    `step_tokens`: the step's response tokens over all processes (default: these batches'); `ranks`:
    this process's place in a distributed bake (ranks.py).
    """
    ranks = ranks or Ranks()
    step_tokens = step_tokens or sum(batch.count for batch in batches)
    run_decoder = ranks.decoder or decoder(model)
    step_loss, teacher_tokens = 0.0, 0
    for batch in batches:
        teacher, ran = teachers.targets(model, batch.indices, device, run_decoder, ranks.any)
        teacher_tokens += ran
        model.train()
        with offload():
            hidden = batch.student.hidden(run_decoder, device)
            loss = head_kl(hidden, heads.student(), teacher, settings.temperature) * (batch.weight / step_tokens)
            # FSDP and DDP average gradients over processes; the step's loss is a sum over them.
            (loss * ranks.world).backward()
        step_loss += loss.item()
        del teacher, hidden, loss
    return step_loss, teacher_tokens


def train(
    model: Any,
    examples: list[TrainingExample],
    settings: BakeSettings,
    pad_id: int,
    n_matmul: int,
    writer: CheckpointWriter | GatheringWriter,
    on_metrics: Callable[[dict], None],
    on_progress: Callable[[int, int], None],
    ranks: Ranks | None = None,
    heads: Heads | None = None,
) -> TrainingOutcome:
    """Trains the adapter; in a distributed bake (`ranks`), only the main process reports metrics and
    progress, and `heads` were taken before the model was sharded."""
    ranks = ranks or Ranks()
    # A sharded model's parameters may sit in host memory (CPU offload); its inputs go to the process's device.
    device = ranks.device if ranks.decoder is not None else next(model.parameters()).device
    # A step holds micro_batch_size × gradient_accumulation_steps examples per process.
    accumulate = settings.gradient_accumulation_steps * ranks.world
    steps_per_epoch = len(epoch_steps(examples, settings.micro_batch_size, accumulate, settings.seed, 0))
    total_steps = steps_per_epoch * settings.epochs
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay, betas=settings.betas
    )
    warmup = settings.warmup_steps or math.ceil(settings.warmup_ratio * total_steps)
    scheduler = get_scheduler(settings.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    plan = CheckpointPlan(settings.checkpoints, steps_per_epoch, total_steps)
    student_flops = (6 if settings.activation_checkpointing else 4) * n_matmul
    offload = (
        (lambda: torch.autograd.graph.save_on_cpu(pin_memory=True))
        if settings.activation_cpu_offload
        else contextlib.nullcontext
    )
    heads = heads or Heads(model)
    teachers = TeacherCache(examples, heads, pad_id, settings.temperature, settings.top_k)
    window, losses, step = MetricsWindow(), [], 0
    iter_started = time.perf_counter()
    for epoch in range(settings.epochs):
        steps = epoch_steps(examples, settings.micro_batch_size, accumulate, settings.seed, epoch)
        for micro_batches in steps:
            batches = [MicroBatch.build(examples, indices, pad_id, weight) for indices, weight in ranks.share(micro_batches)]
            step_tokens = sum(examples[index].count for indices in micro_batches for index in indices)
            _synchronize(device)
            compute_started = time.perf_counter()
            step_loss, teacher_tokens = accumulate_gradients(
                model, batches, teachers, heads, settings, device, offload, step_tokens, ranks
            )
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            _synchronize(device)
            step += 1
            now = time.perf_counter()
            student_tokens = sum(batch.student.tokens for batch in batches if batch.weight)
            sequences = sum(len(batch.indices) for batch in batches if batch.weight)
            step_loss, student_tokens, teacher_tokens, sequences = ranks.total(
                [step_loss, student_tokens, teacher_tokens, sequences]
            )
            window.iters += 1
            window.loss += step_loss
            window.step_time += now - compute_started
            window.iter_time += now - iter_started
            window.student_tokens += student_tokens
            window.flops += student_tokens * student_flops + teacher_tokens * 2 * n_matmul
            window.seqlen_sum += student_tokens
            window.sequences += sequences
            if step % settings.log_interval == 0 or step == total_steps:
                row = window.row(step, lr, step / steps_per_epoch)
                losses.append(row["loss"])
                if ranks.main:
                    on_metrics(row)
                window.reset()
            if plan.due(step):
                writer.save(model, step)
            if ranks.main:
                on_progress(step, total_steps)
            iter_started = time.perf_counter()
    forced = not writer.steps
    if forced:
        writer.save(model, step)
    return TrainingOutcome(losses, step, forced)
