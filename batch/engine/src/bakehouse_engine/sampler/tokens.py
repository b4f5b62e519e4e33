"""Token-level sampling requests (functions/schemas/relay.ts, TokenSamplerRequest): token ids in, each
sequence's token ids and raw log-probs out, for the training protocols' `/sample` and `asample`.

They generate in the same batches as chat replies (generation.py); what differs is how a row ends and
what is kept. As in vLLM, a sequence keeps every token it generated, the one that ended it included:
an end-of-sequence token, a `stop_token_ids` token, or the token whose text completed a `stop`
string. Log-probs are raw (log_softmax of the model's logits, not of the tempered, truncated
distribution the token was drawn from), so a trainer can compare them with its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bakehouse_engine.sampler.outbox import Outbox

# Positions scored at once for prompt log-probs: bounds the float32 copy of the logits.
_SCORE_CHUNK = 512


@dataclass
class TokenChoice:
    index: int
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None


class TokenReply:
    """One token-level request's sequences as they generate; the last one to end posts the answer."""

    wants_logprobs = True

    def __init__(self, request: dict, limit: int, outbox: Outbox) -> None:
        self.request = request
        self.params = request["sample"]
        self.prompt_ids: list[int] = self.params["prompt_tokens"]
        self.limit = limit  # new tokens per sequence at most
        self.outbox = outbox
        self.choices = [TokenChoice(index) for index in range(self.params["n"])]
        self.stop_ids = set(self.params["stop_token_ids"])
        # A stop string newly completed lies within the last few tokens: decoding only those keeps a long
        # sequence's checks cheap. A token adds at least one byte, a character takes at most four.
        self.stop_window = 4 * max((len(stop) for stop in self.params["stop"]), default=0) + 4
        self.prompt_logprobs: list[float | None] | None = None
        self.topk_prompt_logprobs: list[list[tuple[int, float]] | None] | None = None

    @property
    def wants_prompt_logprobs(self) -> bool:
        return self.params["prompt_logprobs"] is not None

    def advance(
        self, choice: TokenChoice, token: int, end_ids: set[int], decode: Callable[[list[int]], str], logprob: float
    ) -> None:
        """Keeps the sequence's newest token and its log-prob; the last sequence to end answers the request."""
        choice.ids.append(token)
        choice.logprobs.append(logprob)
        if token in end_ids or token in self.stop_ids:
            choice.finish_reason = "stop"
        elif self.params["stop"] and any(stop in decode(choice.ids[-self.stop_window :]) for stop in self.params["stop"]):
            choice.finish_reason = "stop"
        elif len(choice.ids) >= self.limit:
            choice.finish_reason = "length"
        if all(other.finish_reason is not None for other in self.choices):
            self.outbox.finish_sample(self._result())

    def score_prompt(self, logits: torch.Tensor) -> None:
        """Sets the prompt's log-probs from the model's logits over it (one row per prompt token).

        Position j is scored by the logits at j - 1; position 0 has nothing before it and stays None.
        """
        k = self.params["prompt_logprobs"]
        prompt = torch.tensor(self.prompt_ids, device=logits.device)
        actual: list[float | None] = [None]
        top: list[list[tuple[int, float]] | None] = [None]
        for start in range(0, len(self.prompt_ids) - 1, _SCORE_CHUNK):
            end = min(start + _SCORE_CHUNK, len(self.prompt_ids) - 1)
            logprobs = torch.log_softmax(logits[start:end].float(), dim=-1)
            actual += logprobs.gather(1, prompt[start + 1 : end + 1].unsqueeze(1)).squeeze(1).tolist()
            if k:
                values, ids = logprobs.topk(k, dim=-1)
                top += [list(zip(row_ids, row_values)) for row_ids, row_values in zip(ids.tolist(), values.tolist())]
        self.prompt_logprobs = actual
        self.topk_prompt_logprobs = top if k else None

    def _result(self) -> dict[str, Any]:
        return {
            "sequences": [
                {"tokens": choice.ids, "logprobs": choice.logprobs, "finish_reason": choice.finish_reason}
                for choice in self.choices
            ],
            "prompt_tokens": self.prompt_ids,
            "prompt_logprobs": self.prompt_logprobs,
            "topk_prompt_logprobs": self.topk_prompt_logprobs,
        }
