"""A local HTTP server playing the API's side of a trainer's relay (functions/schemas/trainer.ts).

It records `ready`, hands out queued operations one at a time on `next` (long-polling up to
`wait_s`; the one held is handed out again until its result arrives), stores each result once,
reports `idle_s` from the last client activity it was told of, checks the bearer token, and can
answer with a fixed status or with a few 503s first.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from fake_relay import refusal, serve

__all__ = ["FakeTrainerRelay", "serve"]

_ROUTE = re.compile(r"^/v1/relay/trainers/(\d+)/(ready|next|operations/([^/]+)/result)$")


@dataclass
class FakeTrainerRelay:
    queue: list[dict] = field(default_factory=list)  # HeldOperations not yet answered, in order
    results: dict[str, dict] = field(default_factory=dict)
    ready: list[dict] = field(default_factory=list)
    next_calls: list[dict] = field(default_factory=list)
    client_active_until: float = 0.0  # monotonic time until which a client keeps using the run
    status: int | None = None  # answer every call with this status instead
    gone_after: int | None = None  # answer 410 once this many results have been stored
    failures_left: int = 0  # answer this many calls with 503 first
    url: str = ""
    lock: threading.Condition = field(default_factory=threading.Condition)
    _seq: int = 0
    _last_activity: float = field(default_factory=time.monotonic)

    def push(self, *operations: dict) -> list[str]:
        """Queues operations as a client's submits; returns their ids."""
        ids = []
        with self.lock:
            for operation in operations:
                self._seq += 1
                ids.append(f"op-{self._seq}")
                self.queue.append({"id": ids[-1], "seq": self._seq, "operation": operation})
            self._last_activity = time.monotonic()
            self.lock.notify_all()
        return ids

    def result(self, operation_id: str) -> dict:
        return self.results[operation_id]

    def answer(self, path: str, token: str | None, body: dict) -> tuple[int, dict]:
        refused = refusal(self, token)
        if refused:
            return refused
        with self.lock:
            if self.gone_after is not None and len(self.results) >= self.gone_after:
                return 410, {"message": "another trainer serves this run"}
        match = _ROUTE.match(path)
        if match is None:
            return 404, {"message": "no such route"}
        if match.group(2) == "ready":
            self.ready.append(body)
            return 200, {}
        if match.group(2) == "next":
            self.next_calls.append(body)
            deadline = time.monotonic() + body["wait_s"]
            with self.lock:
                while not self.queue and time.monotonic() < deadline:
                    self.lock.wait(deadline - time.monotonic())
                held = self.queue[0] if self.queue else None
                now = time.monotonic()
                idle_s = 0.0 if now < self.client_active_until else now - max(self._last_activity, self.client_active_until)
            return 200, {"operation": held, "idle_s": idle_s}
        operation_id = match.group(3)
        with self.lock:
            self.results.setdefault(operation_id, body)
            self.queue[:] = [held for held in self.queue if held["id"] != operation_id]
        return 200, {}

