"""Generation pieces shared by rollouts and the sampler: end tokens, left-padded batches, per-row
random streams and Hermes-style tool calls."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import torch

# An unset max_tokens means "up to the model limit"; this keeps a runaway answer from a model that
# never emits EOS to a bounded cost.
MAX_UNSET_NEW_TOKENS = 4096

TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    configured = model.generation_config.eos_token_id
    if configured is not None:
        ids.update([configured] if isinstance(configured, int) else configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def pad_token_id(tokenizer: Any, eos_ids: list[int]) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]


def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every prompt right-aligned, so generation appends to all rows at once."""
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask


def stream_seed(*parts: int) -> int:
    """A 63-bit seed digested from `parts`, e.g. (seed, stimulus_id, trajectory_id)."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def draw_from_streams(scores: torch.Tensor, streams: list[random.Random]) -> torch.Tensor:
    """One token per row, sampled from softmax(scores) with one uniform draw from that row's stream.

    Inverse-CDF sampling over the whole batch at once, so per-row streams cost no extra kernel
    launches on a GPU; a row's draws do not depend on the batch it runs in.
    """
    cdf = torch.softmax(scores.float(), dim=-1).cumsum(dim=-1)
    uniform = torch.tensor([stream.random() for stream in streams], device=scores.device)
    # The first token whose cumulative mass exceeds u·total; tokens with no mass are never chosen.
    choices = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(1), right=True)
    return choices.clamp_max(cdf.shape[1] - 1).squeeze(1)


def one_hot_scores(scores: torch.Tensor, choices: torch.Tensor) -> torch.Tensor:
    """Scores under which greedy decoding picks exactly `choices` (one token id per row)."""
    one_hot = torch.full_like(scores, float("-inf"))
    one_hot.scatter_(1, choices.unsqueeze(1), 0.0)
    return one_hot


def parse_tool_calls(text: str, call_id_prefix: str) -> dict | None:
    """An assistant message for Hermes-style `<tool_call>{json}</tool_call>` output (Qwen models), else None."""
    calls = []
    for index, match in enumerate(_TOOL_CALL.finditer(text)):
        try:
            call = json.loads(match.group(1))
        except json.JSONDecodeError:
            return None
        if not isinstance(call, dict) or "name" not in call:
            return None
        arguments = call.get("arguments", {})
        calls.append(
            {
                "id": f"{call_id_prefix}_{index}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    if not calls:
        return None
    content = text[: text.index(TOOL_CALL_OPEN)].strip()
    return {"role": "assistant", "content": content or None, "tool_calls": calls}
