"""The control plane picks a bake's GPU lane with plan.py's estimate re-stated in TypeScript
(functions/core/jobs/bake-memory.ts). test/fixtures/bake-plan-estimates.json holds what plan.py
says for the catalog's models; this test fails when plan.py and the fixture part (regenerate it with
`python batch/engine/tests/test_bake_plan_fixture.py`), the vitest when the TypeScript and the
fixture do.
"""

from __future__ import annotations

import json
from pathlib import Path

from bakehouse_engine.bake.plan import GIB, BakeRequest, Devices, ModelShape, estimate_bytes

FIXTURE = Path(__file__).resolve().parents[3] / "test" / "fixtures" / "bake-plan-estimates.json"


def _qwen3(hidden: int, layers: int, intermediate: int, heads: int, tied: bool) -> ModelShape:
    return ModelShape(hidden, layers, 151_936, intermediate, heads, 8, 128, tied)


# The catalog's models, from their config.json files.
SHAPES = {
    "bakehouse/toy-instruct": ModelShape(128, 4, 2048, 384, 4, 4, 32, True),
    "Qwen/Qwen3-0.6B": _qwen3(1024, 28, 3072, 16, True),
    "Qwen/Qwen3-1.7B": _qwen3(2048, 28, 6144, 16, True),
    "Qwen/Qwen3-4B": _qwen3(2560, 36, 9728, 32, True),
    "Qwen/Qwen3-8B": _qwen3(4096, 36, 12_288, 32, False),
    "Qwen/Qwen3-14B": _qwen3(5120, 40, 17_408, 40, False),
    "Qwen/Qwen3-32B": _qwen3(5120, 64, 25_600, 64, False),
}

# Bake configs (as the API holds them) and the request the engine makes of each on a GPU.
CONFIGS = [
    ({}, BakeRequest(2, 2, 1, 3000, True, 32)),
    (
        {
            "micro_batch_size": 1,
            "data": {"max_length": 8192},
            "model": {"baked_adapter_config": {"r": 8, "target_modules": ["q_proj", "v_proj"]}},
        },
        BakeRequest(2, 1, 1, 8192, True, 8, ["q_proj", "v_proj"]),
    ),
    (
        {
            "micro_batch_size": 4,
            "data": {"max_length": 1024},
            "model": {"dtype": "fp32", "disable_activation_checkpoint": True},
        },
        BakeRequest(4, 4, 1, 1024, False, 32),
    ),
]
WORLD_SIZES = [1, 4, 16]


def estimates() -> dict:
    cases = []
    for model, shape in SHAPES.items():
        for config, request in CONFIGS:
            for world in WORLD_SIZES:
                per_gpu = estimate_bytes(shape, request, Devices(world, 80 * GIB))
                cases.append({"model": model, "config": config, "gpus": world, "bytes_per_gpu": per_gpu})
    shapes = {model: {**shape.__dict__, "parameters": shape.parameters} for model, shape in SHAPES.items()}
    return {"shapes": shapes, "cases": cases}


def test_fixture_matches_the_plan():
    assert json.loads(FIXTURE.read_text()) == estimates()


def test_toy_shape_is_the_toy_models_config():
    from transformers import AutoConfig

    from bakehouse_engine.models import resolve_model_path

    config = AutoConfig.from_pretrained(resolve_model_path("bakehouse/toy-instruct"))
    assert ModelShape.from_config(config) == SHAPES["bakehouse/toy-instruct"]


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(estimates(), indent=1) + "\n")
