"""Every loss against a reference written here in plain torch: value, gradient, log-probs and metrics.

The reference runs each row alone (no padding, no micro-batches) through the same model and applies
the formulas of loops-api.md §2.8 / loops-data-plane.md §8.3 as written there.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from bakehouse_engine.trainer.errors import InvalidInput
from bakehouse_engine.trainer.lora_trainer import LoraTrainer
from job_harness import TINY_MODEL, tiny_model_cache  # noqa: F401 — fixture
from trainer_support import assert_close_dicts, datum, forward, grads, trainer  # noqa: F401 — fixture

ROWS = [[5, 9, 14, 22, 31, 7], [40, 41, 42], [3, 60, 61, 62, 63, 64, 65, 66, 67]]
GRAD_TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}


def shifted(tokens: list[int]) -> tuple[list[int], list[int]]:
    return tokens[:-1], tokens[1:]


def reference_logprobs(trainer, tokens: list[int], targets: torch.Tensor) -> torch.Tensor:
    logits = trainer.model(input_ids=torch.tensor([tokens])).logits[0].float()
    logps = torch.log_softmax(logits, dim=-1)
    return logps.gather(-1, targets.reshape(len(tokens), -1)).reshape(targets.shape)


def rl_data(trainer, scalar_advantage: bool = False) -> tuple[list[dict], list[dict]]:
    """Rows with sampler log-probs a little off the model's (so ratios leave the clip range), advantages and weights."""
    generator = torch.Generator().manual_seed(3)
    data, raw = [], []
    for index, row in enumerate(ROWS):
        tokens, targets = shifted(row)
        with torch.no_grad():
            current = reference_logprobs(trainer, tokens, torch.tensor(targets))
        sampled = (current + 0.3 * torch.randn(len(tokens), generator=generator)).tolist()
        advantages = [1.5] if scalar_advantage and index == 1 else torch.randn(len(tokens), generator=generator).tolist()
        weights = [0.0] + [1.0] * (len(tokens) - 1)
        data.append(datum(tokens, targets, weights=weights, logprobs=sampled, advantages=advantages))
        raw.append({"tokens": tokens, "targets": targets, "weights": weights, "logprobs": sampled, "advantages": advantages})
    return data, raw


def reference_rl(trainer, raw: list[dict], per_token) -> torch.Tensor:
    total = torch.zeros(())
    for row in raw:
        logp = reference_logprobs(trainer, row["tokens"], torch.tensor(row["targets"]))
        advantages = torch.tensor(row["advantages"]).expand(len(row["tokens"]))
        total = total + (torch.tensor(row["weights"]) * per_token(logp, torch.tensor(row["logprobs"]), advantages)).sum()
    return total


RL_LOSSES = {
    "importance_sampling": ({}, lambda logp, q, a: -torch.exp(logp - q) * a),
    "ppo": (
        {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1},
        lambda logp, q, a: -torch.minimum(torch.exp(logp - q) * a, torch.clamp(torch.exp(logp - q), 0.9, 1.1) * a),
    ),
    "cispo": (
        {"clip_low_threshold": 0.9, "clip_high_threshold": 1.1},
        lambda logp, q, a: -torch.clamp(torch.exp(logp - q).detach(), 0.9, 1.1) * logp * a,
    ),
    "dro": ({"beta": 0.3}, lambda logp, q, a: -(logp * a - 0.5 * 0.3 * (logp - q) ** 2)),
}


def check_against_reference(trainer, op: dict, reference: torch.Tensor) -> dict:
    """Runs `op` with backward and compares its loss and gradient with the reference's."""
    reference.backward()
    expected_grads = grads(trainer)
    trainer.clear_gradient()
    result = trainer.forward(op)
    assert result["loss_sum"] == pytest.approx(float(reference.detach()), rel=1e-5, abs=1e-5)
    assert_close_dicts(grads(trainer), expected_grads, **GRAD_TOLERANCE)
    return result


@pytest.mark.parametrize("loss_fn", sorted(RL_LOSSES))
def test_rl_losses_match_their_formulas(trainer, loss_fn):
    config, per_token = RL_LOSSES[loss_fn]
    data, raw = rl_data(trainer, scalar_advantage=True)
    result = check_against_reference(trainer, forward(data, loss_fn, config=config), reference_rl(trainer, raw, per_token))

    assert result["active_tokens"] == sum(len(row["tokens"]) - 1 for row in raw)  # the weight-0 position is inactive
    for output, row in zip(result["outputs"], raw, strict=True):
        with torch.no_grad():
            expected = reference_logprobs(trainer, row["tokens"], torch.tensor(row["targets"]))
        assert output["logprobs"]["shape"] == [len(row["tokens"])] and output["logprobs"]["dtype"] == "float32"
        torch.testing.assert_close(torch.tensor(output["logprobs"]["data"]), expected, rtol=1e-5, atol=1e-5)
    if loss_fn in ("ppo", "cispo"):
        with torch.no_grad():
            ratios = [torch.exp(reference_logprobs(trainer, r["tokens"], torch.tensor(r["targets"])) - torch.tensor(r["logprobs"]))[1:] for r in raw]
        clipped = sum(int(((ratio < 0.9) | (ratio > 1.1)).sum()) for ratio in ratios)
        assert 0 < clipped < result["active_tokens"]  # the data exercises both sides of the clip
        assert result["metrics"] == {"clip_fraction": pytest.approx(clipped / result["active_tokens"])}


def test_cross_entropy_with_weights_matches_its_formula(trainer):
    data, reference = [], torch.zeros(())
    for index, row in enumerate(ROWS):
        tokens, targets = shifted(row)
        weights = [float(i % 3 == index % 3) * 0.5 + 0.5 * (i > 0) for i in range(len(tokens))]
        data.append(datum(tokens, targets, weights=weights))
        reference = reference - (torch.tensor(weights) * reference_logprobs(trainer, tokens, torch.tensor(targets))).sum()
    result = check_against_reference(trainer, forward(data), reference)
    assert result["metrics"] == {}


def test_soft_targets_of_shape_n_by_k(trainer):
    """(N, K) cross-entropy: −Σₙ Σₖ w[n,k]·ℓθ(t[n,k]), top-K distillation; log-probs come back [N, K]."""
    tokens = ROWS[2][:-1]
    targets = [[(7 * n + k) % 300 for k in range(3)] for n in range(len(tokens))]
    weights = [[0.6, 0.3, 0.1] if n else [0.0, 0.0, 0.0] for n in range(len(tokens))]
    reference = -(torch.tensor(weights) * reference_logprobs(trainer, tokens, torch.tensor(targets))).sum()
    op = forward([datum(tokens, targets, weights=weights), datum(*shifted(ROWS[1]))], normalization="token_mean_deferred")
    # A plain row beside it: each row of a request is scored in its own shape.
    tokens_1, targets_1 = shifted(ROWS[1])
    reference = reference - reference_logprobs(trainer, tokens_1, torch.tensor(targets_1)).sum()

    result = check_against_reference(trainer, op, reference)
    assert result["outputs"][0]["logprobs"]["shape"] == [len(tokens), 3]
    assert result["active_tokens"] == len(tokens) - 1 + len(tokens_1)  # a soft position counts once
    assert result["loss"] == pytest.approx(result["loss_sum"] / result["active_tokens"])


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_dpo_pairs_alternate_chosen_and_rejected(trainer, smoothing):
    beta = 0.5
    pairs = [(ROWS[0], ROWS[2]), (ROWS[1], ROWS[0])]
    generator = torch.Generator().manual_seed(5)
    data, scores = [], []
    for row in [row for pair in pairs for row in pair]:
        tokens, targets = shifted(row)
        weights = [0.0] + [1.0] * (len(tokens) - 1)
        ref = (torch.randn(len(tokens), generator=generator) - 5).tolist()
        data.append(datum(tokens, targets, weights=weights, ref_logprobs=ref))
        logp = reference_logprobs(trainer, tokens, torch.tensor(targets))
        scores.append(beta * ((torch.tensor(weights) * logp).sum() - (torch.tensor(weights) * torch.tensor(ref)).sum()))
    margins = [scores[0] - scores[1], scores[2] - scores[3]]
    reference = sum(-(1 - smoothing) * F.logsigmoid(z) - smoothing * F.logsigmoid(-z) for z in margins)

    result = check_against_reference(trainer, forward(data, "dpo", config={"beta": beta, "label_smoothing": smoothing}), reference)
    metrics, margins, scores = result["metrics"], [float(z.detach()) for z in margins], [float(s.detach()) for s in scores]
    assert metrics["accuracy"] == pytest.approx(sum(z > 0 for z in margins) / 2)
    assert metrics["margin"] == pytest.approx(sum(margins) / 2, rel=1e-5)
    assert metrics["chosen_reward"] == pytest.approx((scores[0] + scores[2]) / 2, rel=1e-5)
    assert metrics["rejected_reward"] == pytest.approx((scores[1] + scores[3]) / 2, rel=1e-5)


def test_dpo_needs_whole_pairs(trainer):
    tokens, targets = shifted(ROWS[0])
    row = datum(tokens, targets, weights=[1.0] * len(tokens), ref_logprobs=[0.0] * len(tokens))
    with pytest.raises(InvalidInput, match="in pairs"):
        trainer.forward(forward([row] * 3, "dpo"))


def test_micro_batches_give_the_same_loss_and_gradient(trainer, monkeypatch):
    """A budget of one row per pass (dpo: one pair) changes nothing but the number of passes."""
    data, raw = rl_data(trainer)
    whole = trainer.forward(forward(data, "ppo"))
    whole_grads = grads(trainer)
    trainer.clear_gradient()
    monkeypatch.setattr("bakehouse_engine.trainer.forward.LOGITS_BUDGET", 1)
    split = trainer.forward(forward(data, "ppo"))
    assert split["loss_sum"] == pytest.approx(whole["loss_sum"], rel=1e-5)
    assert split["outputs"] == pytest.approx(whole["outputs"])
    assert_close_dicts(grads(trainer), whole_grads, **GRAD_TOLERANCE)


def test_forward_without_backward_reports_the_same_and_leaves_the_gradient_alone(trainer):
    data, _ = rl_data(trainer)
    trainer.forward(forward(data[:1]))
    accumulated = grads(trainer)
    scored = trainer.forward(forward(data, "dro", backward=False))
    trained = trainer.forward(forward(data, "dro", backward=True))
    assert scored["loss_sum"] == pytest.approx(trained["loss_sum"], rel=1e-6)
    assert scored["outputs"] == trained["outputs"]
    trainer.clear_gradient()
    trainer.forward(forward(data[:1]))
    trainer.forward(forward(data, "dro", backward=False))
    assert_close_dicts(grads(trainer), accumulated)


def test_top_k_logprobs_are_the_k_likeliest_tokens_at_every_position(trainer):
    tokens, targets = shifted(ROWS[2])
    result = trainer.forward(forward([datum(tokens, targets, weights=[0.0] * len(tokens))], backward=False, top_k=5))
    with torch.no_grad():
        logps = torch.log_softmax(trainer.model(input_ids=torch.tensor([tokens])).logits[0].float(), dim=-1)
    values, ids = logps.topk(5, dim=-1)
    output = result["outputs"][0]
    assert output["top_k_token_ids"] == {"data": ids.flatten().tolist(), "dtype": "int64", "shape": [len(tokens), 5]}
    assert output["top_k_logprobs"]["shape"] == [len(tokens), 5]
    torch.testing.assert_close(torch.tensor(output["top_k_logprobs"]["data"]).reshape(-1, 5), values)
    # Weight-0 positions still carry real log-probs.
    assert all(math.isfinite(value) for value in output["logprobs"]["data"])
    assert result["active_tokens"] == 0 and result["loss"] == 0.0


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (datum([5, 6, 7], [6, 7, -100]), "negative token id.*shift.*weight 0"),
        (datum([5, 6, 7], [6, 7]), r"target_tokens has shape \[2\]"),
        (datum([5, 6, 7], [6, 7, 8], weights=[1.0, 1.0]), "weights has shape"),
        (datum([5, 6, 7], [6, 7, 100000]), "beyond the model's vocabulary"),
        (datum(list(range(1, 300)), list(range(2, 301))), "more than this run's longest sequence \\(256\\)"),
        ({"tokens": [5, 6], "loss_fn_inputs": {"target_tokens": {"data": [1, 2, 3], "dtype": "int64", "shape": [2]}}}, "holds 2 values, but 3"),
        ({"tokens": [5, 6], "loss_fn_inputs": {"target_tokens": {"data": [1.5, 2], "dtype": "int64", "shape": [2]}}}, "not integers"),
    ],
)
def test_bad_rows_are_refused_with_a_sentence_before_anything_runs(trainer, row, match):
    with pytest.raises(InvalidInput, match=match):
        trainer.forward(forward([row]))
    assert trainer.gradient is None and grads(trainer) == {}


def test_a_loss_missing_its_inputs_says_which(trainer):
    with pytest.raises(InvalidInput, match="lacks logprobs, advantages, which ppo needs"):
        trainer.forward(forward([datum([5, 6, 7], [6, 7, 8])], "ppo"))


def test_a_non_finite_loss_is_refused_and_keeps_what_had_accumulated(trainer):
    tokens, targets = shifted(ROWS[0])
    trainer.forward(forward([datum(tokens, targets)]))
    before = grads(trainer)
    bad = datum(tokens, targets, logprobs=[None] * len(tokens), advantages=[1.0] * len(tokens))
    with pytest.raises(InvalidInput, match="not finite"):
        trainer.forward(forward([bad], "importance_sampling"))
    assert_close_dicts(grads(trainer), before)


def test_log_probs_are_float32_over_a_bf16_model(tiny_model_cache):
    """A bf16 model's logits go through log_softmax in float32; the adapter itself trains in float32."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_cache / TINY_MODEL, dtype=torch.bfloat16)
    trainer = LoraTrainer(model, TINY_MODEL, 4, 0, 256, pad_id=0)
    assert {p.dtype for p in trainer.parameters} == {torch.float32}
    tokens, targets = shifted(ROWS[2])
    result = trainer.forward(forward([datum(tokens, targets)], backward=False))
    with torch.no_grad():
        logits = trainer.model(input_ids=torch.tensor([tokens])).logits[0]
    assert logits.dtype == torch.bfloat16
    in_float32 = torch.log_softmax(logits.float(), dim=-1).gather(-1, torch.tensor(targets)[:, None])[:, 0]
    in_bf16 = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(targets)[:, None])[:, 0].float()
    reported = torch.tensor(result["outputs"][0]["logprobs"]["data"])
    torch.testing.assert_close(reported, in_float32, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(reported, in_bf16, rtol=1e-6, atol=1e-6)
