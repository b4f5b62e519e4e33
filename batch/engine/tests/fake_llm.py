"""A local HTTP server that answers like the Anthropic Messages API or an OpenAI chat endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 — the http.server hook's name
            length = int(self.headers["content-length"])
            fake.requests.append({"path": self.path, "headers": {key.lower(): value for key, value in self.headers.items()}, "json": json.loads(self.rfile.read(length))})
            status, text = fake.replies.pop(0) if fake.replies else (500, "no more replies")
            payload = json.dumps(fake.body_for(status, text)).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
