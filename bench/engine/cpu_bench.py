"""Engine throughput on the CPU with the toy model: rollout batching and bake tokens/s.

1. Rollout: the same stimuli and settings with `max_concurrency` 16 (batched, KV cache, left
   padding) and 1 (one sequence at a time); completion tokens per second of each, and their ratio,
   measured twice: for the whole rollout job (model load and prompt rendering included) and for
   generation alone (the engine's batch loop on a loaded model). Settings alternate for ROUNDS
   rounds in this process and the best round of each counts, so the ratios hold on a shared
   machine where absolute numbers drift (the load average is recorded).
2. Bake: the batched rollout's trajectories baked through the engine's bake job; tokens/s (student
   tokens per second of iteration time) and the estimated TFLOP/s from metrics.jsonl, skipping the
   first row (warm-up).

Usage (from the repository root): batch/engine/.venv/bin/python bench/engine/cpu_bench.py
Writes bench/results/engine-cpu.json and prints it. The toy model is built into the model cache
first if it is missing (minutes, once; the build time is recorded when it happens).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import cpu_machine

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "batch" / "engine" / "src"))
os.environ.setdefault("BAKEHOUSE_DEVICE", "cpu")

STIMULI = 64
TRAJECTORIES = 2
ROUNDS = 3
MAX_TOKENS = 64
BATCHED_CONCURRENCY = 16
BEHAVIOUR = "signature"


def job_context(spec: dict, root: Path):
    from bakehouse_engine.context import JobContext
    from bakehouse_engine.outputs import Metrics, OutputLines, Progress

    workdir = root / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    output, metrics = OutputLines(spec["output_uri"], workdir), Metrics(spec["output_uri"], workdir)
    return JobContext(spec, spec["output_uri"], workdir, output, Progress(spec["output_uri"], (output, metrics)), metrics)


def run_job(module, spec: dict, root: Path) -> tuple[dict, float]:
    ctx = job_context(spec, root)
    started = time.perf_counter()
    result = module.run(ctx)
    elapsed = time.perf_counter() - started
    ctx.output.close()
    ctx.metrics.close()
    return result, elapsed


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stim_lines() -> list[dict]:
    from bakehouse_engine.stim.from_dataset import shipped_questions
    from bakehouse_engine.toy import behaviours

    system_prompt = behaviours[BEHAVIOUR][0]
    lines = []
    questions = (shipped_questions("squad") + shipped_questions("gsm8k"))[:STIMULI]
    for index, question in enumerate(questions):
        user = {"role": "user", "content": question}
        lines.append(
            {
                "stimulus_id": index,
                "unconditioned_stimulus": {"messages": [{"role": "system", "content": system_prompt}, user]},
                "conditioned_stimulus": {"messages": [user]},
            }
        )
    return lines


def bench_rollout(root: Path, stim_uri: str, concurrency: int) -> dict:
    from bakehouse_engine import rollout

    spec = {
        "version": 1, "job_id": 1, "kind": "rollout", "output_uri": (root / "out").as_uri() + "/",
        "rollout": {
            "stim_output_uri": stim_uri, "model": {"base_model": "bakehouse/toy-instruct", "adapters": []},
            "num_traj_per_stimulus": TRAJECTORIES, "temperature": 1.0, "max_tokens": MAX_TOKENS,
            "max_concurrency": concurrency, "extra_kwargs": {}, "tools": None, "seed": 0,
        },
    }
    _, elapsed = run_job(rollout, spec, root)
    lines = read_jsonl(root / "out" / "output.jsonl")
    tokens = sum(line["tokens"] for line in lines)
    return {
        "max_concurrency": concurrency,
        "trajectories": len(lines),
        "completion_tokens": tokens,
        "wall_s": round(elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1),
        "output_path": str(root / "out" / "output.jsonl"),
    }


def bench_generation(model, tokenizer, lines: list[dict], concurrency: int) -> dict:
    from bakehouse_engine.rollout import GenerationSettings, Generator, build_work

    settings = GenerationSettings(temperature=1.0, max_tokens=MAX_TOKENS)
    generator = Generator(model, tokenizer, settings, seed=0)
    work = build_work(lines, tokenizer, {"num_traj_per_stimulus": TRAJECTORIES, "tools": None}, settings, generator.context)
    started, tokens = time.perf_counter(), 0
    for start in range(0, len(work), concurrency):
        for ids, stopped in generator.generate(work[start : start + concurrency]):
            tokens += generator.finish(ids, stopped)[2]
    elapsed = time.perf_counter() - started
    return {"max_concurrency": concurrency, "completion_tokens": tokens, "wall_s": round(elapsed, 2), "tokens_per_s": round(tokens / elapsed, 1)}


def best_round(rounds: list[dict]) -> dict:
    best = dict(max(rounds, key=lambda run: run["tokens_per_s"]))
    best["tokens_per_s_rounds"] = [run["tokens_per_s"] for run in rounds]
    return best


def bench_bake(root: Path, rollout_output: Path) -> dict:
    import bakehouse_engine.bake as bake

    trajectories = len(read_jsonl(rollout_output))
    spec = {
        "version": 1, "job_id": 2, "kind": "bake", "output_uri": (root / "out").as_uri() + "/",
        "bake": {
            "config": {
                "seed": 42, "epochs": 2, "micro_batch_size": 8, "gradient_accumulation_steps": 1,
                "model": {"baked_adapter_config": {"r": 32, "lora_alpha": 16, "target_modules": "all-linear"}},
                "data": {"max_length": 3000},
                "optimizer": {"learning_rate": 1e-2},
                "scheduler": {"type": "huggingface"},
                "checkpoint": [{"save_end_of_training": True}],
                "train_log_iter_interval": 1,
            },
            "datasets": [{"target": "main", "weight": 1.0, "rollout_output_uri": rollout_output.as_uri()}],
            "total_trajectories": trajectories,
            "model": {"base_model": "bakehouse/toy-instruct", "adapters": []},
            "model_name_prefix": "bench/engine/bake",
        },
    }
    result, elapsed = run_job(bake, spec, root)
    rows = read_jsonl(root / "out" / "metrics.jsonl")[1:]
    return {
        "trajectories": trajectories,
        "steps": len(rows) + 1,
        "micro_batch_size": 8,
        "activation_checkpointing": True,
        "wall_s": round(elapsed, 2),
        "tokens_per_s_median": round(statistics.median(row["tokens_per_s"] for row in rows), 1),
        "iter_tflops_median": round(statistics.median(row["iter_tflops"] for row in rows), 4),
        "seqlen_mean": round(statistics.mean(row["seqlen"] for row in rows), 1),
        "loss_first_last": [rows[0]["loss"], result["loss"]["final_loss"]],
    }


def main() -> None:
    from bakehouse_engine.models import load_model
    from bakehouse_engine.toy import ensure_toy_model, model_cache_dir
    from bakehouse_engine.toy.cache import TOY_MODEL_NAME

    toy_dir = model_cache_dir() / TOY_MODEL_NAME
    had_toy = toy_dir.is_dir()
    started = time.perf_counter()
    ensure_toy_model()
    toy_build_s = None if had_toy else round(time.perf_counter() - started, 1)

    with tempfile.TemporaryDirectory(prefix="bakehouse-cpu-bench-") as scratch:
        root = Path(scratch)
        stim_file = root / "stim.jsonl"
        stim_file.write_text("".join(json.dumps(line) + "\n" for line in stim_lines()))
        load_before = os.getloadavg()[0]
        jobs: dict[int, list[dict]] = {BATCHED_CONCURRENCY: [], 1: []}
        for round_index in range(ROUNDS):
            for concurrency in jobs:
                jobs[concurrency].append(bench_rollout(root / f"rollout-{concurrency}-{round_index}", stim_file.as_uri(), concurrency))
        batched, single = (best_round(jobs[concurrency]) for concurrency in (BATCHED_CONCURRENCY, 1))
        baked = bench_bake(root / "bake", Path(batched.pop("output_path")))
        single.pop("output_path")

        model, tokenizer = load_model({"base_model": TOY_MODEL_NAME, "adapters": []}, None, "cpu")
        loops: dict[int, list[dict]] = {BATCHED_CONCURRENCY: [], 1: []}
        for _ in range(ROUNDS):
            for concurrency in loops:
                loops[concurrency].append(bench_generation(model, tokenizer, stim_lines(), concurrency))
        generation_batched, generation_single = (best_round(loops[concurrency]) for concurrency in (BATCHED_CONCURRENCY, 1))
        load_after = os.getloadavg()[0]

    report = {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_machine(load_before, load_after),
        "model": {"name": TOY_MODEL_NAME, "parameters": _parameters(toy_dir), "build_s": toy_build_s},
        "rollout": {
            "stimuli": len(stim_lines()), "trajectories_per_stimulus": TRAJECTORIES, "max_tokens": MAX_TOKENS,
            "job": {
                "batched": batched, "one_at_a_time": single,
                "batched_speedup": round(batched["tokens_per_s"] / single["tokens_per_s"], 2),
            },
            "generation": {
                "batched": generation_batched, "one_at_a_time": generation_single,
                "batched_speedup": round(generation_batched["tokens_per_s"] / generation_single["tokens_per_s"], 2),
            },
        },
        "bake": baked,
    }
    out = REPO / "bench" / "results" / "engine-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _parameters(model_dir: Path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(parameter.numel() for parameter in AutoModelForCausalLM.from_pretrained(model_dir).parameters())


if __name__ == "__main__":
    main()
