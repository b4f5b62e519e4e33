"""One forward (or forward + backward) over a call's rows: padded micro-batches through the model.

Log-probs come from log_softmax on float32 logits whatever the model's dtype, so what the trainer
reports matches what a float32 reference computes. Rows go through the model in micro-batches
bounded by the size of their float32 logits (rows sorted by length, so little is padding); each
micro-batch is backpropagated before the next runs, which is exact because every loss is a sum of
per-row (dpo: per-pair) terms, and a dpo pair always shares its micro-batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from bakehouse_engine.trainer.losses import LOSSES
from bakehouse_engine.trainer.rows import Row
from bakehouse_engine.trainer.tensors import encode_floats, encode_ints

# float32 logits cells per micro-batch (1 GiB): a wide vocabulary gets fewer positions per pass.
LOGITS_BUDGET = 2**28


@dataclass
class ForwardOutcome:
    loss_sum: float = 0.0
    active_tokens: int = 0
    outputs: list[dict] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)


def run_forward(
    model: Any, rows: list[Row], loss_fn: str, config: dict, top_k: int, backward: bool, pad_id: int
) -> ForwardOutcome:
    """The loss sum, per-row outputs (in request order) and loss statistics; with `backward`, the sum's
    gradient is added to the parameters' `.grad`."""
    loss = LOSSES[loss_fn]
    device = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    outcome = ForwardOutcome(outputs=[{} for _ in rows], active_tokens=sum(row.active_tokens for row in rows))
    for batch in _micro_batches(rows, loss_fn == "dpo", vocab):
        with torch.set_grad_enabled(backward):
            logps, top = _logprobs(model, [rows[index] for index in batch], top_k, pad_id, device)
            total, stats = loss.terms([rows[index] for index in batch], logps, config)
            if backward:
                total.backward()
        outcome.loss_sum += float(total.detach())
        outcome.stats.update(stats)  # update adds, keeping negative sums (Counter's + would drop them)
        for position, index in enumerate(batch):
            output = {"logprobs": encode_floats(logps[position])}
            if top_k:
                values, ids = top[position]
                output |= {"top_k_token_ids": encode_ints(ids), "top_k_logprobs": encode_floats(values)}
            outcome.outputs[index] = output
    return outcome


def _micro_batches(rows: list[Row], pairs: bool, vocab: int) -> list[list[int]]:
    """Row indices grouped into micro-batches of at most LOGITS_BUDGET padded logits (at least one unit each)."""
    units = [[i, i + 1] for i in range(0, len(rows), 2)] if pairs else [[i] for i in range(len(rows))]
    units.sort(key=lambda unit: max(len(rows[i].tokens) for i in unit), reverse=True)
    batches: list[list[int]] = [[]]
    width = 0  # the padded length of the current batch: its first unit is its longest
    for unit in units:
        if batches[-1] and (len(batches[-1]) + len(unit)) * width * vocab > LOGITS_BUDGET:
            batches.append([])
        if not batches[-1]:
            width = max(len(rows[i].tokens) for i in unit)
        batches[-1] += unit
    return batches


def _logprobs(
    model: Any, rows: list[Row], top_k: int, pad_id: int, device: torch.device
) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Each row's ℓθ in its targets' shape, and (top-k log-probs, their ids) per position when top_k > 0."""
    width = max(len(row.tokens) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.int64)
    attention = torch.zeros((len(rows), width), dtype=torch.int64)
    for index, row in enumerate(rows):
        input_ids[index, : len(row.tokens)] = row.tokens
        attention[index, : len(row.tokens)] = 1
    # Right padding: every real position sees only real positions before it, so padding changes nothing.
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False).logits
    all_logps = torch.log_softmax(logits.float(), dim=-1)
    logps, top = [], []
    for index, row in enumerate(rows):
        row_logps = all_logps[index, : len(row.tokens)]
        targets = row.targets.to(device)
        logps.append(row_logps.gather(-1, targets.reshape(len(row.tokens), -1)).reshape(targets.shape))
        if top_k:
            values, ids = row_logps.detach().topk(min(top_k, row_logps.shape[-1]), dim=-1)
            top.append((values, ids))
    return logps, top
