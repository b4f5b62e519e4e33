"""One request's choices as they generate: which text may be streamed yet, and how each choice ends.

Streamed text can never be taken back, so a choice shows only what later tokens cannot change: a
trailing U+FFFD (half of a multi-byte character) and any tail that could begin a stop string are
held back, and when the request offered tools, everything from the first `<tool_call>` on, which
the last chunk reports as parsed calls instead. Completions are decoded without the tokenizer's
space clean-up, which could rewrite text already sent when the next token arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bakehouse_engine.decoding import TOOL_CALL_OPEN, parse_tool_calls
from bakehouse_engine.sampler.outbox import Outbox

_PARTIAL_CHARACTER = "\ufffd"


@dataclass
class Choice:
    index: int
    ids: list[int] = field(default_factory=list)
    text: str = ""
    shown: int = 0  # characters of `text` already streamed
    finish_reason: str | None = None
    ended_by_token: bool = False  # an end-of-sequence token was generated; usage counts it, as rollouts do
    tool_calls: list[dict] | None = None


class Reply:
    wants_logprobs = False  # chat replies stream text; token-level ones (tokens.py) keep log-probs

    def __init__(self, request: dict, prompt_ids: list[int], limit: int, outbox: Outbox) -> None:
        self.request = request
        self.params = request["params"]
        self.prompt_ids = prompt_ids
        self.limit = limit  # new tokens per choice at most
        self.tools = bool(request["tools"])
        self.outbox = outbox
        self.choices = [Choice(index) for index in range(self.params["n"])]

    def advance(self, choice: Choice, token: int, end_ids: set[int], decode: Callable[[list[int]], str]) -> None:
        """Takes the choice's newest token and streams what became safe to show; the last choice ends the reply."""
        if token in end_ids:
            choice.ended_by_token = True
            choice.finish_reason = "stop"
        else:
            choice.ids.append(token)
            choice.text = decode(choice.ids)
            cuts = [choice.text.index(stop) for stop in self.params["stop"] if stop in choice.text]
            if cuts:
                choice.text = choice.text[: min(cuts)]
                choice.finish_reason = "stop"
            elif len(choice.ids) >= self.limit:
                choice.finish_reason = "length"
        if choice.finish_reason is not None and self.tools:
            message = parse_tool_calls(choice.text, f"call_{self.request['id']}_{choice.index}")
            choice.tool_calls = message["tool_calls"] if message else None
        shown = self._showable(choice)
        if shown > choice.shown:
            self.outbox.add(choice.index, choice.text[choice.shown : shown])
            choice.shown = shown
        if all(other.finish_reason is not None for other in self.choices):
            self.outbox.finish(self._done())

    def _showable(self, choice: Choice) -> int:
        """How much of the choice's text may be streamed now."""
        text = choice.text
        if choice.finish_reason is not None:
            # Markup of calls that did not parse stays ordinary text.
            return text.index(TOOL_CALL_OPEN) if choice.tool_calls else len(text)
        if self.tools and TOOL_CALL_OPEN in text:
            return text.index(TOOL_CALL_OPEN)
        end = len(text.rstrip(_PARTIAL_CHARACTER))
        markers = self.params["stop"] + ([TOOL_CALL_OPEN] if self.tools else [])
        held = [k for marker in markers for k in range(1, len(marker)) if text[:end].endswith(marker[:k])]
        return end - max(held, default=0)

    def _done(self) -> dict:
        def finish_reason(choice: Choice) -> str:
            return "tool_calls" if choice.tool_calls and choice.finish_reason == "stop" else choice.finish_reason

        return {
            "choices": [
                {"index": choice.index, "finish_reason": finish_reason(choice), "tool_calls": choice.tool_calls}
                for choice in self.choices
            ],
            "usage": {
                "prompt_tokens": len(self.prompt_ids),
                "completion_tokens": sum(len(choice.ids) + choice.ended_by_token for choice in self.choices),
            },
        }
