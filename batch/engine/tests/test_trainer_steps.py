"""Normalisation across calls, optim_step against torch's own AdamW, and init."""

from __future__ import annotations

import pytest
import torch

from bakehouse_engine.trainer.errors import InvalidInput
from job_harness import tiny_model_cache  # noqa: F401 — fixture
from trainer_support import RANK, adam, adapter_weights, assert_close_dicts, datum, forward, grads, make_trainer, trainer  # noqa: F401

FIRST = [
    datum([5, 9, 14, 22, 31], [9, 14, 22, 31, 7], weights=[0.0, 1.0, 1.0, 1.0, 1.0]),
    datum([40, 41], [41, 42]),
]
SECOND = [datum([3, 60, 61, 62, 63, 64, 65, 66], [60, 61, 62, 63, 64, 65, 66, 67], weights=[0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])]
TIGHT = {"rtol": 1e-5, "atol": 1e-7}


def test_split_token_mean_calls_step_like_one_call(tiny_model_cache):
    split, whole, plain = (make_trainer(tiny_model_cache) for _ in range(3))

    first = split.forward(forward(FIRST, normalization="token_mean_deferred"))
    second = split.forward(forward(SECOND, normalization="token_mean_deferred"))
    one = whole.forward(forward(FIRST + SECOND, normalization="token_mean_deferred"))
    # Each call reports its own mean; the step divides by every active token since the last step.
    assert (first["active_tokens"], second["active_tokens"], one["active_tokens"]) == (6, 6, 12)
    assert first["loss"] == pytest.approx(first["loss_sum"] / 6) and second["loss"] == pytest.approx(second["loss_sum"] / 6)
    assert one["loss_sum"] == pytest.approx(first["loss_sum"] + second["loss_sum"], rel=1e-6)

    plain.forward(forward(FIRST + SECOND))
    mean_gradient = {name: grad / 12 for name, grad in grads(plain).items()}
    expected_norm = float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in mean_gradient.values()])))

    split_step = split.optim_step(adam())
    whole_step = whole.optim_step(adam())
    assert split_step["grad_norm"] == pytest.approx(expected_norm, rel=1e-5)
    assert whole_step["grad_norm"] == pytest.approx(expected_norm, rel=1e-5)
    assert_close_dicts(adapter_weights(split), adapter_weights(whole), **TIGHT)


def test_sum_mode_reports_and_steps_on_the_plain_sum(trainer):
    result = trainer.forward(forward(FIRST + SECOND, normalization="sum"))
    assert result["loss"] == result["loss_sum"] and result["active_tokens"] == 12
    summed = grads(trainer)
    step = trainer.optim_step(adam())
    assert step["grad_norm"] == pytest.approx(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in summed.values()]))), rel=1e-5)


def test_normalisations_do_not_mix_in_one_step(trainer):
    trainer.forward(forward(FIRST, normalization="token_mean_deferred"))
    with pytest.raises(InvalidInput, match="token_mean_deferred-normalised and this call asks for sum; take an optim_step"):
        trainer.forward(forward(SECOND, normalization="sum"))
    trainer.forward(forward(SECOND, normalization="sum", backward=False))  # a forward alone accumulates nothing
    trainer.optim_step(adam())
    assert trainer.forward(forward(SECOND, normalization="sum"))["loss"] > 0


def reference_step(weights: dict, gradient: dict, state: dict, settings: dict) -> tuple[dict, float]:
    """torch's AdamW on copies of the adapter, after clipping as torch.nn.utils.clip_grad_norm_ does."""
    norm = float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in gradient.values()])))
    scale = min(1.0, settings["grad_clip_norm"] / (norm + 1e-6)) if settings["grad_clip_norm"] > 0 else 1.0
    if "optimizer" not in state:
        state["params"] = {name: value.clone().requires_grad_() for name, value in weights.items()}
        state["optimizer"] = torch.optim.AdamW(
            state["params"].values(),
            lr=settings["learning_rate"],
            betas=(settings["beta1"], settings["beta2"]),
            eps=settings["eps"],
            weight_decay=settings["weight_decay"],
        )
    for name, parameter in state["params"].items():
        parameter.grad = gradient[name] * scale
    state["optimizer"].step()
    return {name: p.detach().clone() for name, p in state["params"].items()}, norm


def test_optim_step_clips_then_takes_torchs_adamw_step(trainer):
    settings = adam(learning_rate=5e-3, grad_clip_norm=0.05, weight_decay=0.1, beta2=0.99)["adam"]
    reference: dict = {}
    for step, data in enumerate([FIRST, SECOND], start=1):
        trainer.forward(forward(data, normalization="token_mean_deferred"))
        active = sum(1 for d in data for w in (d["loss_fn_inputs"].get("weights") or {"data": [1.0] * len(d["tokens"])})["data"] if w > 0)
        gradient = {name: grad / active for name, grad in grads(trainer).items()}
        expected, norm = reference_step(adapter_weights(trainer), gradient, reference, settings)
        assert norm > settings["grad_clip_norm"]  # clipping happens
        result = trainer.optim_step({"kind": "optim_step", "adam": settings})
        assert result == {"step": step, "learning_rate": 5e-3, "grad_norm": pytest.approx(norm, rel=1e-5)}
        assert_close_dicts(adapter_weights(trainer), expected, **TIGHT)
        assert grads(trainer) == {} and trainer.gradient is None


def test_a_step_with_no_gradient_still_counts(trainer):
    before = adapter_weights(trainer)
    assert trainer.optim_step(adam()) == {"step": 1, "learning_rate": 1e-2, "grad_norm": 0.0}
    assert_close_dicts(adapter_weights(trainer), before)  # Adam's first step on a zero gradient moves nothing
    assert trainer.optim_step(adam())["step"] == 2


def test_init_resets_adapter_optimizer_gradient_and_step(tiny_model_cache):
    trainer = make_trainer(tiny_model_cache, seed=11, perturb=False)
    fresh = adapter_weights(trainer)
    assert all(float(value.abs().sum()) == 0 for name, value in fresh.items() if "lora_B" in name)  # starts as the base
    trainer.forward(forward(FIRST))
    trainer.optim_step(adam())
    trainer.forward(forward(SECOND))

    assert trainer.init({"kind": "init", "lora_rank": RANK}) == {"step": 0, "lora_rank": RANK}
    assert_close_dicts(adapter_weights(trainer), fresh)  # the same seed gives the same adapter
    assert trainer.gradient is None and grads(trainer) == {} and trainer.optimizer.state_dict()["state"] == {}
    with pytest.raises(InvalidInput, match="rank 4; init asked for rank 8"):
        trainer.init({"kind": "init", "lora_rank": 8})
