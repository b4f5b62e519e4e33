"""Builders for trainer tests: a LoraTrainer on the tiny model, operations, and data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from bakehouse_engine.trainer.lora_trainer import LoraTrainer
from job_harness import TINY_MODEL

RANK = 4


def make_trainer(model_cache: Path, seed: int | None = 0, perturb: bool = True, max_seq_len: int = 256) -> LoraTrainer:
    """A trainer on the tiny model. `perturb` gives the adapter random B matrices, so it differs from the
    base model and every adapter parameter has a gradient."""
    model = AutoModelForCausalLM.from_pretrained(model_cache / TINY_MODEL)
    trainer = LoraTrainer(model, TINY_MODEL, RANK, seed, max_seq_len, pad_id=0)
    if perturb:
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, parameter in trainer.model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return trainer


def tensor(values: list, dtype: str = "float32") -> dict:
    """A TrainerTensor from a list, or a list of equal-length lists ([N, K])."""
    if values and isinstance(values[0], list):
        return {"data": [value for row in values for value in row], "dtype": dtype, "shape": [len(values), len(values[0])]}
    return {"data": list(values), "dtype": dtype, "shape": [len(values)]}


def datum(tokens: list[int], targets: list, **inputs: list) -> dict:
    loss_inputs = {"target_tokens": tensor(targets, "int64")}
    loss_inputs |= {name: tensor(values) for name, values in inputs.items()}
    return {"tokens": tokens, "loss_fn_inputs": loss_inputs}


def forward(data: list[dict], loss_fn: str = "cross_entropy", backward: bool = True, normalization: str = "sum", config: dict | None = None, top_k: int = 0) -> dict:
    return {
        "kind": "forward",
        "backward": backward,
        "data": data,
        "loss_fn": loss_fn,
        "loss_fn_config": config,
        "normalization": normalization,
        "top_k_logprobs": top_k,
    }


def adam(learning_rate: float = 1e-2, grad_clip_norm: float = 0.0, **settings: float) -> dict:
    values = {"learning_rate": learning_rate, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0, "grad_clip_norm": grad_clip_norm}
    return {"kind": "optim_step", "adam": values | settings}


def grads(trainer: LoraTrainer) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.requires_grad and p.grad is not None}


def adapter_weights(trainer: LoraTrainer) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}


def assert_close_dicts(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], **tolerance: float) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], **tolerance, msg=lambda m, n=name: f"{n}: {m}")


@pytest.fixture
def trainer(tiny_model_cache: Path) -> LoraTrainer:
    return make_trainer(tiny_model_cache)
