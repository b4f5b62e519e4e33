"""Bake-step throughput and model FLOPs utilisation on one CUDA GPU (baking.md §7.3).

Runs the engine's own training step (teacher pass with the adapter disabled, student pass with
LoRA, full-vocabulary forward KL, AdamW) on randomly initialised Qwen3-0.6B and Qwen3-8B
architectures, built from the published config numbers below, so no download is needed.

Setting: bf16 base, LoRA all-linear r 32 (α 16), sequence length 2048 for both the student and the
teacher sequence, the second half of each sequence as the response (the KL positions).

Accounting (baking.md §7.2): N = matmul parameters, LM head included. Model FLOPs per step =
4N × student tokens + 2N × teacher tokens; `mfu` divides their rate by the H100 SXM dense bf16 peak
(989 TFLOP/s). `hfu` also counts the 2N activation recomputation of the student when activation
checkpointing is on. Attention-score FLOPs are left out (about 10 % at this length), so both are
slight underestimates. `tokens_per_s` counts student tokens.

Usage (from the repository root, with the engine environment):
    batch/engine/.venv/bin/python bench/engine/gpu_bench.py [--models qwen3-0.6b qwen3-8b] [--steps 6]
Writes bench/results/engine-gpu.json and prints it. Refuses to run without CUDA.
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

DEVICE = "cuda"
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
}
MICRO_BATCH_SIZES = {"qwen3-0.6b": (1, 4), "qwen3-8b": (1, 2)}


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_bench.py needs a CUDA GPU and found none (torch.cuda.is_available() is False). "
            "Run it on a GPU machine; for CPU figures use bench/engine/cpu_bench.py.",
            file=sys.stderr,
        )
        sys.exit(2)


def build_model(name: str):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**QWEN3[name], attn_implementation="sdpa")
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(DEVICE):
            model = Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def synthetic_examples(count: int, vocab: int):
    import torch

    from bakehouse_engine.bake.sequences import TrainingExample

    generator = torch.Generator().manual_seed(0)
    examples = []
    prompt = SEQUENCE_LENGTH - RESPONSE_TOKENS
    for _ in range(count):
        response = torch.randint(0, vocab, (RESPONSE_TOKENS,), generator=generator).tolist()
        student = torch.randint(0, vocab, (prompt,), generator=generator).tolist() + response
        teacher = torch.randint(0, vocab, (prompt,), generator=generator).tolist() + response
        examples.append(TrainingExample(student, teacher, prompt, prompt, RESPONSE_TOKENS))
    return examples


class NoCheckpoints:
    """Stands in for the checkpoint writer: the benchmark measures training steps only."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def save(self, model, step: int) -> None:
        self.steps.append(step)


def bench_one(name: str, micro_batch_size: int, steps: int, warmup: int, checkpointing: bool) -> dict:
    import torch

    import bakehouse_engine.bake as bake
    from bakehouse_engine.bake.settings import lora_config, resolve_settings
    from bakehouse_engine.bake.train import matmul_parameters, train

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = build_model(name)
    n_matmul = matmul_parameters(model)
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
    settings = resolve_settings(config, DEVICE)
    peft_model = bake.attach_lora(model, lora_config(config["model"]), settings)
    rows: list[dict] = []
    examples = synthetic_examples(micro_batch_size * (warmup + steps), model.config.vocab_size)
    started = time.perf_counter()
    train(peft_model, examples, settings, 0, n_matmul, NoCheckpoints(), rows.append, lambda step, total: None)
    wall = time.perf_counter() - started
    measured = rows[warmup:]
    step_time = sum(row["step_time"] for row in measured) / len(measured)
    student_tokens = teacher_tokens = micro_batch_size * SEQUENCE_LENGTH
    model_flops = student_tokens * 4 * n_matmul + teacher_tokens * 2 * n_matmul
    hardware_flops = model_flops + (student_tokens * 2 * n_matmul if checkpointing else 0)
    result = {
        "model": name,
        "micro_batch_size": micro_batch_size,
        "activation_checkpointing": checkpointing,
        "matmul_parameters": n_matmul,
        "trainable_parameters": sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        "step_time_s": round(step_time, 4),
        "tokens_per_s": round(student_tokens / step_time, 1),
        "model_tflops_per_s": round(model_flops / step_time / 1e12, 2),
        "mfu": round(model_flops / step_time / H100_BF16_DENSE_PEAK, 4),
        "hfu": round(hardware_flops / step_time / H100_BF16_DENSE_PEAK, 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "measured_steps": len(measured),
        "wall_s": round(wall, 1),
    }
    del peft_model, model
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(QWEN3), choices=list(QWEN3))
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per setting")
    parser.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    parser.add_argument("--no-checkpointing-too", action="store_true", help="also measure without activation checkpointing")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "engine-gpu.json")
    args = parser.parse_args()
    require_cuda()
    import torch
    import transformers

    results = []
    for name in args.models:
        for micro_batch_size in MICRO_BATCH_SIZES[name]:
            for checkpointing in (True, False) if args.no_checkpointing_too else (True,):
                try:
                    results.append(bench_one(name, micro_batch_size, args.steps, args.warmup, checkpointing))
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    results.append({"model": name, "micro_batch_size": micro_batch_size, "activation_checkpointing": checkpointing, "error": "out of memory"})
                print(json.dumps(results[-1]), flush=True)
    report = {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "gpu": torch.cuda.get_device_name(0),
            "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "setting": {
            "sequence_length": SEQUENCE_LENGTH,
            "response_tokens": RESPONSE_TOKENS,
            "dtype": "bf16",
            "lora": "all-linear r 32 alpha 16",
            "objective": "full-vocabulary forward KL, online teacher (adapter disabled)",
            "peak_tflops": H100_BF16_DENSE_PEAK / 1e12,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
