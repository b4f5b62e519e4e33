"""Builds rollout and bake jobs against the tiny model and runs their modules with a real JobContext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bakehouse_engine.context import JobContext
from bakehouse_engine.outputs import Metrics, OutputLines, Progress
from tiny_llm import build_tiny_model

TINY_MODEL = "test/tiny-chat"


@pytest.fixture(scope="session")
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("model-cache")
    build_tiny_model(cache / TINY_MODEL)
    return cache


@pytest.fixture
def tiny_model(tiny_model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny model's catalog name, resolvable through the model cache; the engine runs on the CPU."""
    monkeypatch.setenv("BAKEHOUSE_MODEL_CACHE", str(tiny_model_cache))
    monkeypatch.setenv("BAKEHOUSE_DEVICE", "cpu")
    return TINY_MODEL


def job_context(spec: dict, root: Path) -> JobContext:
    output_uri = spec["output_uri"]
    workdir = root / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    output = OutputLines(output_uri, workdir)
    metrics = Metrics(output_uri, workdir)
    return JobContext(spec, output_uri, workdir, output, Progress(output_uri, (output, metrics)), metrics)


def close(ctx: JobContext) -> None:
    ctx.output.close()
    ctx.metrics.close()
    ctx.progress.flush()


def stim_line(stimulus_id: int, question: str, teacher_system: str | None, student_system: str | None = None, override: bool = False) -> dict:
    def messages(system: str | None) -> list[dict]:
        prefix = [{"role": "system", "content": system}] if system else []
        return prefix + [{"role": "user", "content": question}]

    line = {
        "stimulus_id": stimulus_id,
        "unconditioned_stimulus": {"messages": messages(teacher_system)},
        "conditioned_stimulus": {"messages": messages(student_system)},
    }
    if override:
        line["trajectory_override_stimulus"] = line["conditioned_stimulus"]
    return line


def write_jsonl(path: Path, lines: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path.as_uri()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rollout_spec(root: Path, base_model: str, stim_lines: list[dict], **rollout: object) -> dict:
    settings = {
        "stim_output_uri": write_jsonl(root / "stim" / "output.jsonl", stim_lines),
        "model": {"base_model": base_model, "adapters": []},
        "num_traj_per_stimulus": 2,
        "temperature": 1.0,
        "max_tokens": 8,
        "max_concurrency": 4,
        "extra_kwargs": {},
        "tools": None,
        "seed": 7,
    }
    settings.update(rollout)
    return {"version": 1, "job_id": 1, "output_uri": (root / "out").as_uri() + "/", "kind": "rollout", "rollout": settings}


def rollout_lines(count: int, teacher_system: str = "You are a pirate.", response: str = "Arr, the sea is wide.") -> list[dict]:
    lines = []
    for index in range(count):
        line = stim_line(index, f"What is the sea number {index}?", teacher_system)
        line.update(trajectory_id=0, response=response, finish_reason="stop", tokens=6)
        lines.append(line)
    return lines


def bake_spec(root: Path, base_model: str, datasets: list[tuple[str, float, list[dict]]], total: int, **config: object) -> dict:
    bake_config = {
        "seed": 3,
        "epochs": 1,
        "micro_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "model": {"baked_adapter_config": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "lora_dropout": 0, "bias": "none"}},
        "data": {"max_length": 200},
        "optimizer": {"learning_rate": 1e-2},
        "scheduler": {"type": "huggingface"},
        "checkpoint": [{"type": "huggingface", "save_end_of_training": True}],
        "train_log_iter_interval": 1,
    }
    bake_config.update(config)
    return {
        "version": 1,
        "job_id": 2,
        "output_uri": (root / "out").as_uri() + "/",
        "kind": "bake",
        "bake": {
            "config": bake_config,
            "datasets": [
                {"target": target, "weight": weight, "rollout_output_uri": write_jsonl(root / "rollouts" / f"{target}.jsonl", lines)}
                for target, weight, lines in datasets
            ],
            "total_trajectories": total,
            "model": {"base_model": base_model, "adapters": []},
            "model_name_prefix": "user/repo/bake1",
        },
    }
