"""The bake objective on the CPU, before and after the frugal objective, in one run.

Before: the objective as it was (kept here as a reference, not in the engine): the model's logits
for one window from the smallest to the largest response position across a micro-batch's rows,
float32 log-softmax of the whole `[tokens, vocab]` for teacher and student, the teacher pass run
again every epoch, micro-batches in plain shuffled order. After: the engine's `train()` (hidden
states gathered at the response positions, float32 head a chunk of positions at a time, the teacher
cached per example, micro-batches grouped by length).

The model is a Qwen3 architecture with Qwen3's vocabulary (151,936 tokens) and a small hidden size,
randomly initialised here, so the head and the KL dominate as they do for long responses on real
models. Two measures:
1. Peak memory of one bake step (teacher pass, student forward and backward, AdamW): each path runs
   in a fresh child process, which resets its peak RSS (Linux `/proc/self/clear_refs`) after
   building the model and reads `VmHWM` after the step; the figure is the growth over the RSS before
   the step. The after path is measured again with 4× the response tokens, to show that its peak
   does not grow with them.
2. Useful tokens/s over 3 epochs of a chat-length dataset: non-padding student tokens (and response
   tokens) per second of the whole training run, of wall time and of this process's CPU time (which
   other work on a shared machine disturbs less), teacher passes included, both paths with the same
   examples, settings (micro-batches of 4, 2 per optimizer step) and seed in this process, and the
   share of the student tokens each path runs through the model that is padding.

Usage (from the repository root): batch/engine/.venv/bin/python bench/engine/bake_objective_bench.py
Writes bench/results/engine-bake-objective.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_machine

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "batch" / "engine" / "src"))

MODEL = dict(
    vocab_size=151936, hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, tie_word_embeddings=True, max_position_embeddings=4096,
)
LORA = {"r": 16, "lora_alpha": 16, "target_modules": "all-linear"}
# One step with long responses: 2 examples, 384 response tokens each; the after path also with 4×
# the response tokens, where the before path would need about 4× its memory.
PEAK_STEP = {"examples": 2, "student_prompt": 96, "teacher_prompt": 160, "response": 384}
LONG_RESPONSE_SCALE = 4
# A chat-length dataset: user turns of 20–120 tokens, a 60-token system prompt for the teacher,
# replies of 16–400 tokens (log-uniform: many short, a few long).
DATASET = {"examples": 32, "micro_batch_size": 4, "gradient_accumulation_steps": 2, "epochs": 3, "seed": 42}


def build_model():
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    return Qwen3ForCausalLM(Qwen3Config(**MODEL, attn_implementation="sdpa"))


def settings_for(micro_batch_size: int, accumulate: int, epochs: int):
    from bakehouse_engine.bake.settings import resolve_settings

    config = {
        "seed": DATASET["seed"], "epochs": epochs, "micro_batch_size": micro_batch_size,
        "gradient_accumulation_steps": accumulate,
        "model": {"dtype": "fp32", "baked_adapter_config": LORA}, "optimizer": {"learning_rate": 1e-3},
        "scheduler": {"type": "constant"},
    }
    return resolve_settings(config, "cpu")


def lora_model(settings):
    import bakehouse_engine.bake as bake
    from bakehouse_engine.bake.settings import lora_config

    return bake.attach_lora(build_model(), lora_config({"baked_adapter_config": LORA}), settings)


def example(rng: random.Random, student_prompt: int, teacher_prompt: int, response: int):
    from bakehouse_engine.bake.sequences import TrainingExample

    def ids(n: int) -> list[int]:
        return [rng.randrange(3, MODEL["vocab_size"]) for _ in range(n)]

    target = ids(response)
    return TrainingExample(ids(student_prompt) + target, ids(teacher_prompt) + target, student_prompt, teacher_prompt, response)


def peak_step_examples(scale: int):
    rng = random.Random(0)
    shape = PEAK_STEP
    return [example(rng, shape["student_prompt"], shape["teacher_prompt"], shape["response"] * scale) for _ in range(shape["examples"])]


def chat_examples():
    rng = random.Random(1)
    made = []
    for _ in range(DATASET["examples"]):
        user = rng.randint(20, 120)
        made.append(example(rng, user + 8, user + 68, round(math.exp(rng.uniform(math.log(16), math.log(400))))))
    return made


# The objective as it was before, for comparison only.


class ReferenceSide:
    """Padded sequences and the window of positions whose logits the old objective computed."""

    def __init__(self, sequences, starts, counts, pad_id):
        import torch

        width = max(len(s) for s in sequences)
        self.ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        self.mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            self.ids[row, : len(sequence)] = torch.tensor(sequence)
            self.mask[row, : len(sequence)] = 1
        first = min(start - 1 for start in starts)
        last = max(start - 1 + count for start, count in zip(starts, counts))
        rows, cols = [], []
        for row, (start, count) in enumerate(zip(starts, counts)):
            rows.extend([row] * count)
            cols.extend(range(start - 1 - first, start - 1 - first + count))
        self.keep, self.rows, self.cols = torch.arange(first, last), torch.tensor(rows), torch.tensor(cols)
        self.tokens = int(self.mask.sum())

    def logits(self, model):
        output = model(input_ids=self.ids, attention_mask=self.mask, logits_to_keep=self.keep, use_cache=False)
        return output.logits[self.rows, self.cols]


def reference_step(model, batches, settings, pad_id) -> float:
    """The old accumulate_gradients: teacher pass every time, whole-window logits, whole log-softmax."""
    import torch
    import torch.nn.functional as F

    step_tokens = sum(e.count for batch in batches for e in batch)
    step_loss = 0.0
    for batch in batches:
        counts = [e.count for e in batch]
        teacher = ReferenceSide([e.teacher_ids for e in batch], [e.teacher_start for e in batch], counts, pad_id)
        student = ReferenceSide([e.student_ids for e in batch], [e.student_start for e in batch], counts, pad_id)
        model.eval()
        with torch.no_grad(), model.disable_adapter():
            teacher_logits = teacher.logits(model)
        model.train()
        student_logits = student.logits(model)
        teacher_logp = F.log_softmax(teacher_logits.float() / settings.temperature, dim=-1)
        student_logp = F.log_softmax(student_logits.float() / settings.temperature, dim=-1)
        kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(dim=-1)
        loss = kl.sum() / step_tokens
        loss.backward()
        step_loss += loss.item()
        del teacher_logits, student_logits, teacher_logp, student_logp, kl, loss
    return step_loss


def reference_steps(examples, settings, epoch):
    """The old epoch_steps: epoch 0 in collated order, later epochs shuffled, no grouping."""
    order = list(examples)
    if epoch:
        random.Random(settings.seed + epoch).shuffle(order)
    size, accumulate = settings.micro_batch_size, settings.gradient_accumulation_steps
    micro = [order[i : i + size] for i in range(0, len(order), size)]
    return [micro[i : i + accumulate] for i in range(0, len(micro), accumulate)]


def reference_train(model, examples, settings, pad_id) -> list[float]:
    """The old loop, with the old step; AdamW, gradient clipping and a constant learning rate as train()."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay, betas=settings.betas)
    losses = []
    for epoch in range(settings.epochs):
        for batches in reference_steps(examples, settings, epoch):
            losses.append(reference_step(model, batches, settings, pad_id))
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return losses


def padded_student_tokens(settings, examples) -> dict:
    """Student tokens each path runs through the model over all epochs, padding included."""
    from bakehouse_engine.bake.batches import epoch_steps

    def padded(micro_batches) -> int:
        return sum(len(batch) * max(len(e.student_ids) for e in batch) for batch in micro_batches)

    before = after = 0
    for epoch in range(settings.epochs):
        before += padded(batch for step in reference_steps(examples, settings, epoch) for batch in step)
        steps = epoch_steps(examples, settings.micro_batch_size, settings.gradient_accumulation_steps, settings.seed, epoch)
        after += padded([examples[i] for i in indices] for step in steps for indices in step)
    return {"before": before, "after": after}


class NoCheckpoints:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def save(self, model, step: int) -> None:
        self.steps.append(step)


def frugal_train(model, examples, settings, pad_id) -> list[float]:
    from bakehouse_engine.bake.train import train

    rows: list[dict] = []
    train(model, examples, settings, pad_id, 1, NoCheckpoints(), rows.append, lambda step, total: None)
    return [row["loss"] for row in rows]


TRAINERS = {"before": reference_train, "after": frugal_train}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_peak(path: str, scale: int) -> dict:
    """Child process: one bake step of `path`; the peak RSS growth over the RSS before the step."""
    import gc

    import torch

    torch.manual_seed(0)
    examples = peak_step_examples(scale)
    settings = settings_for(len(examples), 1, 1)
    model = lora_model(settings)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    losses = TRAINERS[path](model, examples, settings, 0)
    elapsed = time.perf_counter() - started
    return {
        "path": path,
        "loss_tokens": sum(e.count for e in examples),
        "peak_growth_mib": round((_status_kib("VmHWM") - before) / 1024, 1),
        "rss_before_mib": round(before / 1024, 1),
        "step_s": round(elapsed, 2),
        "loss": losses[0],
    }


def peak_in_child(path: str, scale: int = 1) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--peak", path, "--scale", str(scale)], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_throughput(path: str) -> dict:
    import torch

    torch.manual_seed(0)
    examples = chat_examples()
    settings = settings_for(DATASET["micro_batch_size"], DATASET["gradient_accumulation_steps"], DATASET["epochs"])
    model = lora_model(settings)
    started, cpu_started = time.perf_counter(), time.process_time()
    losses = TRAINERS[path](model, examples, settings, 0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    student_tokens = DATASET["epochs"] * sum(len(e.student_ids) for e in examples)
    response_tokens = DATASET["epochs"] * sum(e.count for e in examples)
    return {
        "path": path,
        "wall_s": round(elapsed, 2),
        "cpu_s": round(cpu, 2),
        "useful_tokens_per_s": round(student_tokens / elapsed, 1),
        "useful_tokens_per_cpu_s": round(student_tokens / cpu, 1),
        "response_tokens_per_s": round(response_tokens / elapsed, 1),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peak", choices=list(TRAINERS), help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("BAKEHOUSE_DEVICE", "cpu")
    if args.peak:
        print(json.dumps(measure_peak(args.peak, args.scale)))
        return

    load_before = os.getloadavg()[0]
    peaks = {path: peak_in_child(path) for path in TRAINERS}
    peaks["after_long"] = peak_in_child("after", LONG_RESPONSE_SCALE)
    throughput = {path: measure_throughput(path) for path in TRAINERS}
    load_after = os.getloadavg()[0]
    examples = chat_examples()
    settings = settings_for(DATASET["micro_batch_size"], DATASET["gradient_accumulation_steps"], DATASET["epochs"])
    padded = padded_student_tokens(settings, examples)
    useful = DATASET["epochs"] * sum(len(e.student_ids) for e in examples)
    report = {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_machine(load_before, load_after),
        "model": {**MODEL, "architecture": "Qwen3, random init, fp32", "lora": LORA},
        "peak_step": {
            "setting": PEAK_STEP,
            **peaks,
            "after_over_before": round(peaks["after"]["peak_growth_mib"] / peaks["before"]["peak_growth_mib"], 3),
        },
        "three_epochs": {
            "setting": {
                **DATASET,
                "student_tokens": sum(len(e.student_ids) for e in examples),
                "response_tokens": sum(e.count for e in examples),
                "response_lengths_min_max": [min(e.count for e in examples), max(e.count for e in examples)],
            },
            **throughput,
            "padding_share_of_student_tokens": {path: round(1 - useful / padded[path], 3) for path in TRAINERS},
            "after_over_before": round(
                throughput["after"]["useful_tokens_per_s"] / throughput["before"]["useful_tokens_per_s"], 2
            ),
            "after_over_before_per_cpu_s": round(
                throughput["after"]["useful_tokens_per_cpu_s"] / throughput["before"]["useful_tokens_per_cpu_s"], 2
            ),
        },
    }
    out = REPO / "bench" / "results" / "engine-bake-objective.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
