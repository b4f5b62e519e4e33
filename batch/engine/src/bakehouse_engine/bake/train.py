"""The bake's training loop: LoRA on one PEFT model, teacher = the same model with the adapter off.

Per micro-batch (baking.md §3.1): the teacher pass runs the teacher sequences inside
`disable_adapter()` without gradients; the student pass runs the student sequences with the adapter
on; the loss is the per-token KL over the response positions. The step's loss is the per-token mean
over every response token of its micro-batches (Σ token KL / Σ response tokens), so gradient
accumulation gives the same update as one large batch.

Only the response positions reach the LM head (`logits_to_keep`), which matters with 150k-token
vocabularies. Metrics rows (metrics.jsonl) average the iterations since the previous row:
`tokens_per_s` counts student tokens per second of `iter_time` (the whole iteration); `step_time`
is forward, backward and optimizer only; TFLOP/s are estimates from matmul parameters N: 4N per
student token (6N with activation checkpointing) plus 2N per teacher token (baking.md §7.2).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from transformers import get_scheduler

from bakehouse_engine.bake.checkpoints import CheckpointPlan, CheckpointWriter
from bakehouse_engine.bake.loss import token_kl
from bakehouse_engine.bake.sequences import TrainingExample
from bakehouse_engine.bake.settings import MAX_GRAD_NORM, BakeSettings


@dataclass
class Side:
    """One side (student or teacher) of a micro-batch: padded ids and where the loss positions are."""

    ids: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor  # the sequence positions whose logits are computed
    rows: torch.Tensor  # (tokens,) batch row of each loss position
    cols: torch.Tensor  # (tokens,) index into `keep` of each loss position
    tokens: int  # non-padding tokens

    @classmethod
    def build(cls, sequences: list[list[int]], starts: list[int], counts: list[int], pad_id: int) -> Side:
        width = max(len(sequence) for sequence in sequences)
        ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        first = min(start - 1 for start in starts)
        last = max(start - 1 + count for start, count in zip(starts, counts))
        rows, cols = [], []
        for row, (start, count) in enumerate(zip(starts, counts)):
            rows.extend([row] * count)
            cols.extend(range(start - 1 - first, start - 1 - first + count))
        return cls(ids, mask, torch.arange(first, last), torch.tensor(rows), torch.tensor(cols), int(mask.sum()))

    def logits(self, model: Any, device: torch.device) -> torch.Tensor:
        """(loss positions, vocab) logits of this side under the model's current adapter state."""
        output = model(
            input_ids=self.ids.to(device),
            attention_mask=self.mask.to(device),
            logits_to_keep=self.keep.to(device),
            use_cache=False,
        )
        return output.logits[self.rows.to(device), self.cols.to(device)]


@dataclass
class MicroBatch:
    student: Side
    teacher: Side
    count: int  # loss positions
    seqlen_sum: int  # Σ student sequence lengths, for the seqlen metric
    size: int

    @classmethod
    def build(cls, examples: list[TrainingExample], pad_id: int) -> MicroBatch:
        counts = [example.count for example in examples]
        student = Side.build([e.student_ids for e in examples], [e.student_start for e in examples], counts, pad_id)
        teacher = Side.build([e.teacher_ids for e in examples], [e.teacher_start for e in examples], counts, pad_id)
        return cls(student, teacher, sum(counts), student.tokens, len(examples))


def matmul_parameters(model: torch.nn.Module) -> int:
    """N of baking.md §7.2: weights of every linear layer, the LM head included."""
    return sum(module.weight.numel() for module in model.modules() if isinstance(module, torch.nn.Linear))


def epoch_steps(examples: list[TrainingExample], settings: BakeSettings, epoch: int) -> list[list[list[TrainingExample]]]:
    """One epoch as optimizer steps, each a list of micro-batches. Epoch 0 keeps the collated order."""
    order = list(examples)
    if epoch:
        random.Random(settings.seed + epoch).shuffle(order)
    micro = [order[i : i + settings.micro_batch_size] for i in range(0, len(order), settings.micro_batch_size)]
    accumulate = settings.gradient_accumulation_steps
    return [micro[i : i + accumulate] for i in range(0, len(micro), accumulate)]


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
    model: Any, batches: list[MicroBatch], settings: BakeSettings, device: torch.device, offload: Callable
) -> float:
    """Teacher and student passes over one step's micro-batches; returns the step's per-token KL."""
    step_tokens = sum(batch.count for batch in batches)
    step_loss = 0.0
    for batch in batches:
        model.eval()
        with torch.no_grad(), model.disable_adapter():
            teacher_logits = batch.teacher.logits(model, device)
        model.train()
        with offload():
            student_logits = batch.student.logits(model, device)
            kl = token_kl(teacher_logits, student_logits, settings.temperature, settings.top_k)
            loss = kl.sum() / step_tokens
            loss.backward()
        step_loss += loss.item()
        del teacher_logits, student_logits, kl, loss
    return step_loss


def train(
    model: Any,
    examples: list[TrainingExample],
    settings: BakeSettings,
    pad_id: int,
    n_matmul: int,
    writer: CheckpointWriter,
    on_metrics: Callable[[dict], None],
    on_progress: Callable[[int, int], None],
) -> TrainingOutcome:
    device = next(model.parameters()).device
    steps_per_epoch = len(epoch_steps(examples, settings, 0))
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
    window, losses, step = MetricsWindow(), [], 0
    iter_started = time.perf_counter()
    for epoch in range(settings.epochs):
        for micro_batches in epoch_steps(examples, settings, epoch):
            batches = [MicroBatch.build(chunk, pad_id) for chunk in micro_batches]
            _synchronize(device)
            compute_started = time.perf_counter()
            step_loss = accumulate_gradients(model, batches, settings, device, offload)
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            _synchronize(device)
            step += 1
            now = time.perf_counter()
            window.iters += 1
            window.loss += step_loss
            window.step_time += now - compute_started
            window.iter_time += now - iter_started
            window.student_tokens += sum(batch.student.tokens for batch in batches)
            window.flops += sum(
                batch.student.tokens * student_flops + batch.teacher.tokens * 2 * n_matmul for batch in batches
            )
            window.seqlen_sum += sum(batch.seqlen_sum for batch in batches)
            window.sequences += sum(batch.size for batch in batches)
            if step % settings.log_interval == 0 or step == total_steps:
                row = window.row(step, lr, step / steps_per_epoch)
                losses.append(row["loss"])
                on_metrics(row)
                window.reset()
            if plan.due(step):
                writer.save(model, step)
            on_progress(step, total_steps)
            iter_started = time.perf_counter()
    forced = not writer.steps
    if forced:
        writer.save(model, step)
    return TrainingOutcome(losses, step, forced)
