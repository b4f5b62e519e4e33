"""A local HTTP server that answers like the Anthropic Messages API or an OpenAI chat endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from json_server import serve_json


@dataclass
class FakeLLM:
    """Replies are served in order; each is (status, text) where text is the model's reply text."""

    wire: str
    replies: list[tuple[int, str]]
    truncated: bool = False
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def body_for(self, status: int, text: str) -> dict:
        if status != 200:
            return {"error": {"type": "error", "message": text}}
        if self.wire == "anthropic":
            return {"content": [{"type": "text", "text": text}], "stop_reason": "max_tokens" if self.truncated else "end_turn"}
        return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "length" if self.truncated else "stop"}]}


@contextmanager
def serve(fake: FakeLLM) -> Iterator[FakeLLM]:
    def answer(path: str, headers: dict[str, str], body: dict) -> tuple[int, object]:
        fake.requests.append({"path": path, "headers": headers, "json": body})
        status, text = fake.replies.pop(0) if fake.replies else (500, "no more replies")
        return status, fake.body_for(status, text)

    with serve_json(answer) as url:
        fake.url = url
        yield fake
