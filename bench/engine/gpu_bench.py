"""Bake-step throughput, model FLOPs utilisation and peak memory on one CUDA GPU (baking.md §7.3),
before and after the frugal objective, and whether a Qwen3-32B bake step fits the GPU.

Runs the engine's own training step (teacher pass with the adapter disabled, student pass with
LoRA, forward KL, AdamW) on randomly initialised Qwen3-0.6B and Qwen3-8B architectures, built from
the published config numbers below, so no download is needed:
- `after`: the engine's objective (bake/train.py: float32 LM head on the response positions only,
  chunked KL, teacher cached per example; the measured steps are the first epoch, so every step runs
  its teacher pass);
- `before`: the objective as it was (bench/engine/bake_objective_bench.py keeps it as a reference:
  whole-window logits, whole-vocabulary log-softmax, teacher every step).
Then the Qwen3-32B architecture: the engine's memory plan (bake/plan.py) for one GPU of this size,
and, when the plan fits without offload, one measured step.

Setting: bf16 base, LoRA all-linear r 32 (α 16), sequence length 2048 for both the student and the
teacher sequence, the second half of each sequence as the response (the KL positions).

Accounting (baking.md §7.2): N = matmul parameters, LM head included. Model FLOPs per step =
4N × student tokens + 2N × teacher tokens; `mfu` divides their rate by the H100 SXM dense bf16 peak
(989 TFLOP/s; an H200 has the same peak). `hfu` also counts the 2N activation recomputation of the
student when activation checkpointing is on. Attention-score FLOPs are left out (about 10 % at this
length), so both are slight underestimates. `tokens_per_s` counts student tokens.

Usage (from the repository root, with the engine environment; sized to finish within 10 minutes on
one H100/H200, not yet timed on one):
    batch/engine/.venv/bin/python bench/engine/gpu_bench.py [--models qwen3-0.6b qwen3-8b] [--steps 6]
Writes bench/results/engine-gpu.json and prints it. Refuses to run without CUDA, except with
`--cpu-smoke`: the same code paths on tiny architectures on the CPU in seconds (a test runs it), for
checking the script where there is no GPU; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "batch" / "engine" / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

H100_BF16_DENSE_PEAK = 989.4e12
SEQUENCE_LENGTH = 2048
RESPONSE_TOKENS = 1024

# Published architectures (huggingface.co/Qwen/Qwen3-0.6B and Qwen/Qwen3-8B, config.json).
QWEN3 = {
    "qwen3-0.6b": dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
        max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    ),
    "qwen3-8b": dict(
        vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=False,
        max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    ),
    "qwen3-32b": dict(
        vocab_size=151936, hidden_size=5120, intermediate_size=25600, num_hidden_layers=64,
        num_attention_heads=64, num_key_value_heads=8, head_dim=128, tie_word_embeddings=False,
        max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    ),
}
MICRO_BATCH_SIZES = {"qwen3-0.6b": (1, 4), "qwen3-8b": (1, 2)}
FIT_CHECK = "qwen3-32b"
# --cpu-smoke: the same runs on tiny shapes of the same families, on the CPU.
SMOKE_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16, vocab_size=1000)
SMOKE_SEQUENCE_LENGTH = 64


class Run:
    """Device and sizes of this run: the GPU figures, or the CPU smoke test."""

    def __init__(self, smoke: bool) -> None:
        self.smoke = smoke
        self.device = "cpu" if smoke else "cuda"
        self.sequence_length = SMOKE_SEQUENCE_LENGTH if smoke else SEQUENCE_LENGTH
        self.response_tokens = self.sequence_length // 2

    def config(self, name: str) -> dict:
        return {**QWEN3[name], **SMOKE_SHAPE} if self.smoke else QWEN3[name]

    def synchronize(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.device == "cuda" else None

    def memory_bytes(self) -> int:
        import torch

        return torch.cuda.get_device_properties(0).total_memory if self.device == "cuda" else 141 * 10**9


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_bench.py needs a CUDA GPU and found none (torch.cuda.is_available() is False). "
            "Run it on a GPU machine; for CPU figures use bench/engine/cpu_bench.py.",
            file=sys.stderr,
        )
        sys.exit(2)


def build_model(run: Run, name: str):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**run.config(name), attn_implementation="sdpa")
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(run.device):
            model = Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def synthetic_examples(run: Run, count: int, vocab: int):
    import torch

    from bakehouse_engine.bake.sequences import TrainingExample

    generator = torch.Generator().manual_seed(0)
    examples = []
    prompt = run.sequence_length - run.response_tokens
    for _ in range(count):
        response = torch.randint(0, vocab, (run.response_tokens,), generator=generator).tolist()
        student = torch.randint(0, vocab, (prompt,), generator=generator).tolist() + response
        teacher = torch.randint(0, vocab, (prompt,), generator=generator).tolist() + response
        examples.append(TrainingExample(student, teacher, prompt, prompt, run.response_tokens))
    return examples


class NoCheckpoints:
    """Stands in for the checkpoint writer: the benchmark measures training steps only."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def save(self, model, step: int) -> None:
        self.steps.append(step)


def bake_settings(run: Run, micro_batch_size: int, checkpointing: bool):
    from bakehouse_engine.bake.settings import resolve_settings

    config = {
        "micro_batch_size": micro_batch_size,
        "model": {
            "dtype": "bf16",
            "disable_activation_checkpoint": not checkpointing,
            "baked_adapter_config": {"r": 32, "lora_alpha": 16, "target_modules": "all-linear"},
        },
        "scheduler": {"type": "constant"},
        "train_log_iter_interval": 1,
    }
    return config, resolve_settings(config, run.device)


def engine_step_times(run: Run, peft_model, examples, settings, n_matmul: int) -> list[float]:
    """`after`: the engine's train(); the step time of each optimizer step."""
    from bakehouse_engine.bake.train import train

    rows: list[dict] = []
    train(peft_model, examples, settings, 0, n_matmul, NoCheckpoints(), rows.append, lambda step, total: None)
    return [row["step_time"] for row in rows]


def reference_step_times(run: Run, peft_model, examples, settings, n_matmul: int) -> list[float]:
    """`before`: the old objective's step (bake_objective_bench.py) with AdamW, timed as train() times its steps."""
    import torch

    from bake_objective_bench import reference_step, reference_steps

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    times = []
    for batches in reference_steps(examples, settings, 0):
        run.synchronize()
        started = time.perf_counter()
        with torch.device(run.device):  # the reference builds its tensors with factory calls
            reference_step(peft_model, batches, settings, 0)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        run.synchronize()
        times.append(time.perf_counter() - started)
    return times


OBJECTIVES = {"after": engine_step_times, "before": reference_step_times}


def bench_one(run: Run, name: str, micro_batch_size: int, steps: int, warmup: int, checkpointing: bool, objective: str) -> dict:
    import torch

    import bakehouse_engine.bake as bake
    from bakehouse_engine.bake.settings import lora_config
    from bakehouse_engine.bake.train import matmul_parameters

    run.reset_peak()
    model = build_model(run, name)
    n_matmul = matmul_parameters(model)
    config, settings = bake_settings(run, micro_batch_size, checkpointing)
    peft_model = bake.attach_lora(model, lora_config(config["model"]), settings)
    examples = synthetic_examples(run, micro_batch_size * (warmup + steps), model.config.vocab_size)
    started = time.perf_counter()
    times = OBJECTIVES[objective](run, peft_model, examples, settings, n_matmul)
    wall = time.perf_counter() - started
    measured = times[warmup:]
    step_time = sum(measured) / len(measured)
    student_tokens = teacher_tokens = micro_batch_size * run.sequence_length
    model_flops = student_tokens * 4 * n_matmul + teacher_tokens * 2 * n_matmul
    hardware_flops = model_flops + (student_tokens * 2 * n_matmul if checkpointing else 0)
    result = {
        "model": name,
        "objective": objective,
        "micro_batch_size": micro_batch_size,
        "activation_checkpointing": checkpointing,
        "matmul_parameters": n_matmul,
        "trainable_parameters": sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        "step_time_s": round(step_time, 4),
        "tokens_per_s": round(student_tokens / step_time, 1),
        "model_tflops_per_s": round(model_flops / step_time / 1e12, 2),
        "mfu": round(model_flops / step_time / H100_BF16_DENSE_PEAK, 4),
        "hfu": round(hardware_flops / step_time / H100_BF16_DENSE_PEAK, 4),
        "peak_memory_gib": run.peak_gib(),
        "measured_steps": len(measured),
        "wall_s": round(wall, 1),
    }
    del peft_model, model
    run.reset_peak()
    return result


def fit_check(run: Run, name: str) -> dict:
    """The engine's plan for a bake of `name` (seq 2048, micro-batch 1) on one GPU of this size, and one
    measured step when the plan fits it without offload."""
    from transformers import Qwen3Config

    from bakehouse_engine.bake.plan import BakeRequest, Devices, ModelShape, plan_bake
    from bakehouse_engine.errors import JobFailure

    shape = ModelShape.from_config(Qwen3Config(**QWEN3[name]))
    request = BakeRequest(dtype_bytes=2, micro_batch_size=1, gradient_accumulation_steps=1, max_length=SEQUENCE_LENGTH,
                          activation_checkpointing=True, lora_rank=32)
    check: dict = {"model": name, "parameters": shape.parameters, "device_bytes": run.memory_bytes()}
    try:
        plan = plan_bake(shape, request, Devices(1, run.memory_bytes()))
    except JobFailure as error:
        return {**check, "fits": False, "plan_error": str(error)}
    check.update(plan=plan.as_dict(), fits=not plan.cpu_offload)
    if check["fits"]:
        check["step"] = bench_one(run, name, 1, 1, 0, True, "after")
    return check


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["qwen3-0.6b", "qwen3-8b"], choices=[m for m in QWEN3 if m != FIT_CHECK])
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per setting")
    parser.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    parser.add_argument("--no-checkpointing-too", action="store_true", help="also measure without activation checkpointing")
    parser.add_argument("--no-fit-check", action="store_true", help=f"skip the {FIT_CHECK} plan and step")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU: checks the script, measures nothing")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "engine-gpu.json")
    args = parser.parse_args(argv)
    run = Run(args.cpu_smoke)
    if not run.smoke:
        require_cuda()
    import torch
    import transformers

    results = []
    for name in args.models:
        for micro_batch_size in MICRO_BATCH_SIZES[name]:
            for checkpointing in (True, False) if args.no_checkpointing_too else (True,):
                for objective in args.objectives:
                    try:
                        results.append(bench_one(run, name, micro_batch_size, args.steps, args.warmup, checkpointing, objective))
                    except torch.cuda.OutOfMemoryError:
                        run.reset_peak()
                        results.append({"model": name, "objective": objective, "micro_batch_size": micro_batch_size,
                                        "activation_checkpointing": checkpointing, "error": "out of memory"})
                    print(json.dumps(results[-1]), flush=True)
    fit = None
    if not args.no_fit_check:
        try:
            fit = fit_check(run, FIT_CHECK)
        except torch.cuda.OutOfMemoryError:
            run.reset_peak()
            fit = {"model": FIT_CHECK, "fits": False, "error": "out of memory in the measured step although the plan fitted"}
        print(json.dumps(fit), flush=True)
    report = {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "gpu": torch.cuda.get_device_name(0) if not run.smoke else "none (--cpu-smoke)",
            "gpu_memory_gib": round(run.memory_bytes() / 2**30, 1),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "setting": {
            "sequence_length": run.sequence_length,
            "response_tokens": run.response_tokens,
            "dtype": "bf16",
            "lora": "all-linear r 32 alpha 16",
            "objectives": {
                "after": "bake/train.py: float32 head on the response positions, chunked KL, teacher cached per example",
                "before": "bake_objective_bench.py reference: whole-window logits and log-softmax, teacher every step",
            },
            "peak_tflops": H100_BF16_DENSE_PEAK / 1e12,
            "smoke": run.smoke,
        },
        "results": results,
        "fit_check": fit,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
