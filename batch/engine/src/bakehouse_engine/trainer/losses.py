"""The losses a forward can ask for, each a plain sum over tokens (loops-api.md §2.8, loops-data-plane.md §8.3).

Per target token: ℓθ is the trained model's log-prob, ℓq the sampler's (`logprobs`), A the
advantage, w the weight (1 when none was sent) and r = exp(ℓθ − ℓq):

- cross_entropy        −Σ w·ℓθ  (with [N, K] targets: −Σₙ Σₖ w[n,k]·ℓθ(t[n,k]), soft-target distillation)
- importance_sampling  −Σ w·r·A
- ppo                  −Σ w·min(r·A, clip(r, lo, hi)·A)
- cispo                −Σ w·sg(clip(r, lo, hi))·ℓθ·A
- dro                  −Σ w·[ℓθ·A − ½β(ℓθ − ℓq)²]
- dpo                  rows alternate chosen, rejected; with s = Σ w·ℓθ and s_ref = Σ w·ref_logprobs per row,
                       z = β[(s_c − s_ref,c) − (s_r − s_ref,r)] and the pair's loss is
                       −(1 − ε)·log σ(z) − ε·log σ(−z), ε = label_smoothing

Each loss returns its sum (with a graph, for backward) and additive statistics, which `metrics`
turns into the loss's diagnostics once every micro-batch of the call is in, so they do not depend
on how the call was split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bakehouse_engine.trainer.rows import Row

Terms = tuple[torch.Tensor, Counter]


@dataclass(frozen=True)
class Loss:
    # (rows of one micro-batch, their ℓθ in the targets' shapes, loss_fn_config) → (sum, statistics)
    terms: Callable[[list[Row], list[torch.Tensor], dict], Terms]
    # (statistics of the whole call) → metrics
    metrics: Callable[[Counter], dict[str, float]]


def _setting(config: dict, key: str, default: float) -> float:
    value = config.get(key)
    return float(default if value is None else value)


def _no_metrics(_stats: Counter) -> dict[str, float]:
    return {}


def _cross_entropy(rows: list[Row], logps: list[torch.Tensor], _config: dict) -> Terms:
    total = sum(-(row.weights.to(logp.device) * logp).sum() for row, logp in zip(rows, logps, strict=True))
    return total, Counter()


def _per_token(term: Callable[[torch.Tensor, dict[str, torch.Tensor], dict], tuple[torch.Tensor, torch.Tensor | None]]):
    """A loss that is a weighted sum of per-token terms; `term` gives (per-token loss, positions clipped or None)."""

    def terms(rows: list[Row], logps: list[torch.Tensor], config: dict) -> Terms:
        total, stats = torch.zeros((), device=logps[0].device), Counter()
        for row, logp in zip(rows, logps, strict=True):
            inputs = {name: value.to(logp.device) for name, value in row.inputs.items()}
            weights = row.weights.to(logp.device)
            per_token, clipped = term(logp, inputs, config)
            total = total + (weights * per_token).sum()
            if clipped is not None:
                active = weights > 0
                stats["clipped"] += int((clipped & active).sum())
                stats["active"] += int(active.sum())
        return total, stats

    return terms


def _ratio(logp: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.exp(logp - inputs["logprobs"])


def _clip_bounds(config: dict) -> tuple[float, float]:
    return _setting(config, "clip_low_threshold", 0.8), _setting(config, "clip_high_threshold", 1.2)


def _importance_sampling(logp, inputs, _config):
    return -_ratio(logp, inputs) * inputs["advantages"], None


def _ppo(logp, inputs, config):
    low, high = _clip_bounds(config)
    ratio, advantages = _ratio(logp, inputs), inputs["advantages"]
    clipped = torch.clamp(ratio, low, high)
    return -torch.minimum(ratio * advantages, clipped * advantages), (ratio < low) | (ratio > high)


def _cispo(logp, inputs, config):
    low, high = _clip_bounds(config)
    ratio = _ratio(logp, inputs).detach()
    return -torch.clamp(ratio, low, high) * logp * inputs["advantages"], (ratio < low) | (ratio > high)


def _dro(logp, inputs, config):
    beta = _setting(config, "beta", 0.05)
    return -(logp * inputs["advantages"] - 0.5 * beta * (logp - inputs["logprobs"]) ** 2), None


def _clip_fraction(stats: Counter) -> dict[str, float]:
    return {"clip_fraction": stats["clipped"] / stats["active"] if stats["active"] else 0.0}


def _dpo(rows: list[Row], logps: list[torch.Tensor], config: dict) -> Terms:
    beta, smoothing = _setting(config, "beta", 0.1), _setting(config, "label_smoothing", 0.0)
    rewards = []  # β·(s − s_ref) per row: the implicit reward
    for row, logp in zip(rows, logps, strict=True):
        weights = row.weights.to(logp.device)
        rewards.append(beta * ((weights * logp).sum() - (weights * row.inputs["ref_logprobs"].to(logp.device)).sum()))
    chosen, rejected = torch.stack(rewards[0::2]), torch.stack(rewards[1::2])
    z = chosen - rejected
    total = (-(1 - smoothing) * F.logsigmoid(z) - smoothing * F.logsigmoid(-z)).sum()
    stats = Counter(
        pairs=len(z),
        correct=int((z > 0).sum()),
        margin=float(z.detach().sum()),
        chosen_reward=float(chosen.detach().sum()),
        rejected_reward=float(rejected.detach().sum()),
    )
    return total, stats


def _dpo_metrics(stats: Counter) -> dict[str, float]:
    pairs = stats["pairs"] or 1
    return {
        "accuracy": stats["correct"] / pairs,
        "margin": stats["margin"] / pairs,
        "chosen_reward": stats["chosen_reward"] / pairs,
        "rejected_reward": stats["rejected_reward"] / pairs,
    }


LOSSES = {
    "cross_entropy": Loss(_cross_entropy, _no_metrics),
    "importance_sampling": Loss(_per_token(_importance_sampling), _no_metrics),
    "ppo": Loss(_per_token(_ppo), _clip_fraction),
    "cispo": Loss(_per_token(_cispo), _clip_fraction),
    "dro": Loss(_per_token(_dro), _no_metrics),
    "dpo": Loss(_dpo, _dpo_metrics),
}
