"""A forward's data, checked and decoded: one Row per TrainerDatum (loops-data-plane.md §8.2).

Alignment is Tinker's: position i of `tokens` predicts `target_tokens[i]`, and every per-position
input is as long as `tokens` (`advantages` may be one value for the whole row). Everything is
checked before the model runs, so a bad datum never leaves half a gradient behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bakehouse_engine.trainer.errors import InvalidInput
from bakehouse_engine.trainer.tensors import decode

# The inputs each loss reads beyond target_tokens; `weights` is optional (default 1) except for dpo.
LOSS_INPUTS = {
    "cross_entropy": (),
    "importance_sampling": ("logprobs", "advantages"),
    "ppo": ("logprobs", "advantages"),
    "cispo": ("logprobs", "advantages"),
    "dro": ("logprobs", "advantages"),
    "dpo": ("weights", "ref_logprobs"),
}


@dataclass
class Row:
    tokens: torch.Tensor  # [N] int64
    targets: torch.Tensor  # [N], or [N, K] for soft cross-entropy targets
    weights: torch.Tensor  # the shape of targets; ones when none were sent
    inputs: dict[str, torch.Tensor]  # the loss's other inputs, each [N] (advantages broadcast from [1])

    @property
    def active_tokens(self) -> int:
        """Positions with a weight > 0 (a soft-target position counts once)."""
        active = self.weights > 0
        return int((active.any(dim=-1) if active.dim() == 2 else active).sum())


def decode_rows(data: list[dict], loss_fn: str, vocab_size: int, max_seq_len: int) -> list[Row]:
    if loss_fn == "dpo" and len(data) % 2:
        raise InvalidInput(f"dpo takes chosen and rejected rows in pairs (chosen first), but {len(data)} rows were sent.")
    return [_decode_row(datum, index, loss_fn, vocab_size, max_seq_len) for index, datum in enumerate(data)]


def _decode_row(datum: dict, index: int, loss_fn: str, vocab_size: int, max_seq_len: int) -> Row:
    at = f"data[{index}]"
    length = len(datum["tokens"])
    if length > max_seq_len:
        raise InvalidInput(f"{at} has {length} tokens, more than this run's longest sequence ({max_seq_len}); shorten it.")
    if not all(type(token) is int and token >= 0 for token in datum["tokens"]):
        raise InvalidInput(f"{at}.tokens must be non-negative integer token ids.")
    tokens = torch.tensor(datum["tokens"], dtype=torch.int64)
    if int(tokens.max()) >= vocab_size:
        raise InvalidInput(f"{at}.tokens holds token id {int(tokens.max())}, beyond the model's vocabulary of {vocab_size}.")
    given = datum["loss_fn_inputs"]
    missing = [name for name in ("target_tokens", *LOSS_INPUTS[loss_fn]) if name not in given]
    if missing:
        raise InvalidInput(f"{at}.loss_fn_inputs lacks {', '.join(missing)}, which {loss_fn} needs.")

    targets = decode(given["target_tokens"], f"{at}.target_tokens")
    if targets.dtype != torch.int64:
        raise InvalidInput(f"{at}.target_tokens must be integer token ids, not {given['target_tokens']['dtype']}.")
    soft = loss_fn == "cross_entropy" and targets.dim() == 2
    if targets.shape[0] != length or not (targets.dim() == 1 or soft):
        wanted = "[N] or [N, K]" if loss_fn == "cross_entropy" else "[N]"
        raise InvalidInput(
            f"{at}.target_tokens has shape {list(targets.shape)}; {loss_fn} needs {wanted} with N = {length}, the length "
            "of tokens (position i predicts target i)."
        )
    if int(targets.min()) < 0:
        raise InvalidInput(
            f"{at}.target_tokens holds a negative token id. There is no ignore label: shift the sequence instead "
            "(tokens = sequence[:-1], target_tokens = sequence[1:]) and give the positions to skip weight 0."
        )
    if int(targets.max()) >= vocab_size:
        raise InvalidInput(f"{at}.target_tokens holds token id {int(targets.max())}, beyond the model's vocabulary of {vocab_size}.")

    weights = torch.ones(targets.shape)
    if "weights" in given:
        weights = decode(given["weights"], f"{at}.weights").to(torch.float32)
        if weights.shape != targets.shape:
            raise InvalidInput(f"{at}.weights has shape {list(weights.shape)}; it must match target_tokens, {list(targets.shape)}.")
    inputs = {}
    for name in LOSS_INPUTS[loss_fn]:
        if name == "weights":
            continue
        value = decode(given[name], f"{at}.{name}").to(torch.float32)
        if name == "advantages" and list(value.shape) == [1]:
            value = value.expand(length)
        if list(value.shape) != [length]:
            raise InvalidInput(f"{at}.{name} has shape {list(value.shape)}; it must be [{length}], one value per token.")
        inputs[name] = value
    return Row(tokens, targets, weights, inputs)
