"""A local HTTP server playing the API's side of the sampler relay (functions/schemas/relay.ts).

It hands out queued requests on `/next` (long-polling up to `wait_s`), records posted chunks per
request (a repeated seq is stored once, as the API does), checks the bearer token, and can answer
every call with a fixed status, or `cancelled: true` for chosen requests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from json_server import serve_json

TOKEN = "t" * 40
_NEXT = re.compile(r"^/v1/relay/samplers/(\d+)/next$")
_CHUNKS = re.compile(r"^/v1/relay/samplers/(\d+)/requests/([^/]+)/chunks$")


@dataclass
class FakeRelay:
    queue: list[dict] = field(default_factory=list)
    chunks: dict[str, list[dict]] = field(default_factory=dict)
    next_calls: list[dict] = field(default_factory=list)
    cancel: set[str] = field(default_factory=set)
    status: int | None = None  # answer every call with this status instead
    failures_left: int = 0  # answer this many calls with 503 first
    on_chunk: Callable[[str, dict], None] | None = None
    url: str = ""
    lock: threading.Condition = field(default_factory=threading.Condition)

    def push(self, *requests: dict) -> None:
        with self.lock:
            self.queue.extend(requests)
            self.lock.notify_all()

    def text(self, request_id: str, index: int = 0) -> str:
        return "".join(d["content"] for c in self.chunks[request_id] for d in c["deltas"] if d["index"] == index)

    def last(self, request_id: str) -> dict:
        return self.chunks[request_id][-1]

    def answer(self, path: str, token: str | None, body: dict) -> tuple[int, dict]:
        refused = refusal(self, token)
        if refused:
            return refused
        if _NEXT.match(path):
            self.next_calls.append(body)
            deadline = time.monotonic() + body["wait_s"]
            with self.lock:
                while not self.queue and time.monotonic() < deadline:
                    self.lock.wait(deadline - time.monotonic())
                handed, self.queue[:] = self.queue[: body["max"]], self.queue[body["max"] :]
            return 200, {"requests": handed}
        match = _CHUNKS.match(path)
        if match:
            request_id = match.group(2)
            with self.lock:
                stored = self.chunks.setdefault(request_id, [])
                if all(chunk["seq"] != body["seq"] for chunk in stored):
                    stored.append(body)
            if self.on_chunk:
                self.on_chunk(request_id, body)
            return 200, {"cancelled": request_id in self.cancel}
        return 404, {"message": "no such route"}


class Relay(Protocol):
    """What a fake relay (this one, the trainer's) holds for `refusal` and `serve`."""

    status: int | None
    failures_left: int
    url: str
    lock: threading.Condition

    def answer(self, path: str, token: str | None, body: dict) -> tuple[int, dict]: ...


AnyRelay = TypeVar("AnyRelay", bound=Relay)


def refusal(relay: Relay, token: str | None) -> tuple[int, dict] | None:
    """What a relay answers before routing, if anything: 401 for a wrong token, the status it was
    told to answer with, or one of the 503s it was told to give first."""
    if token != f"Bearer {TOKEN}":
        return 401, {"message": "bad token"}
    if relay.status is not None:
        return relay.status, {"message": "forced"}
    with relay.lock:
        if relay.failures_left > 0:
            relay.failures_left -= 1
            return 503, {"message": "restarting"}
    return None


@contextmanager
def serve(relay: AnyRelay) -> Iterator[AnyRelay]:
    with serve_json(lambda path, headers, body: relay.answer(path, headers.get("authorization"), body)) as url:
        relay.url = url
        yield relay
