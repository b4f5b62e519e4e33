"""Outboxes that keep what the sampler streamed in memory, for driving `Sampler._serve_batch` without a relay.

Used by the sampler tests and by bench/engine/sampler_bench.py.
"""

from __future__ import annotations


class MemoryOutbox:
    """The text each choice streamed, and how the reply ended."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}
        self.ending: dict | None = None
        self.stopped = False

    def add(self, index: int, text: str) -> None:
        self.texts[index] = self.texts.get(index, "") + text

    def finish(self, done: dict) -> None:
        self.ending = {"done": done, "error": None}

    def finish_sample(self, sampled: dict) -> None:
        self.ending = {"done": None, "sampled": sampled, "error": None}

    def fail(self, error: str) -> None:
        self.ending = {"done": None, "error": error}


class MemoryPoster:
    """Stands in for the ChunkPoster: one fresh outbox per request opened."""

    def __init__(self) -> None:
        self.boxes: dict[str, MemoryOutbox] = {}

    def open(self, request_id: str) -> MemoryOutbox:
        self.boxes[request_id] = MemoryOutbox()
        return self.boxes[request_id]
