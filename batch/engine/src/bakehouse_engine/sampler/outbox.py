"""Posting each reply's chunks from a background thread, so relay latency never stalls generation.

Generation adds text to a request's Outbox; the poster thread turns what has gathered into the next
numbered RelayChunk. A request's first text goes out at once (time to first token is what a chat
user feels), later text about every COALESCE_S, and the last chunk as soon as the reply ends. While
a post is slow, text keeps merging into the next chunk, so a slow relay means fewer, larger chunks
rather than a growing queue. One thread posts everything, which keeps each request's chunks in order.
"""

from __future__ import annotations

import logging
import threading
import time

from bakehouse_engine.sampler.relay import GIVE_UP_AFTER_S, RelayClient, RelayGone, RelayRejected

COALESCE_S = 0.04

log = logging.getLogger(__name__)


class Outbox:
    """One request's text and ending not yet posted: generation adds to it, the poster takes chunks from it,
    both under the poster's lock."""

    def __init__(self, poster: ChunkPoster, request_id: str) -> None:
        self.request_id = request_id
        self.seq = 0
        self.deltas: dict[int, str] = {}
        self.ending: dict | None = None  # the last chunk's `done` and `error` (or a token-level answer's `sampled`)
        self.posted_at: float | None = None
        self.cancelled = False
        self._poster = poster

    @property
    def stopped(self) -> bool:
        """Nobody will read more of this reply: the caller went away, or the relay dropped this sampler."""
        return self.cancelled or self._poster.gone

    def add(self, index: int, text: str) -> None:
        if text:
            with self._poster.wakeup:
                self.deltas[index] = self.deltas.get(index, "") + text
                self._poster.wakeup.notify()

    def finish(self, done: dict) -> None:
        self._end({"done": done, "error": None})

    def finish_sample(self, sampled: dict) -> None:
        """Ends a token-level request with its answer (relay.ts SampleResult)."""
        self._end({"done": None, "sampled": sampled, "error": None})

    def fail(self, error: str) -> None:
        self._end({"done": None, "error": error})

    def _end(self, ending: dict) -> None:
        with self._poster.wakeup:
            self.ending = ending
            self._poster.wakeup.notify()

    def due_at(self) -> float | None:
        """When the next chunk should go out, or None while there is nothing to post."""
        if self.cancelled or not (self.deltas or self.ending):
            return None
        if self.ending is not None or self.posted_at is None:
            return 0.0
        return self.posted_at + COALESCE_S

    def take_chunk(self) -> dict:
        chunk = {
            "seq": self.seq,
            "deltas": [{"index": index, "content": text} for index, text in sorted(self.deltas.items())],
            "done": None,
            "error": None,
            **(self.ending or {}),
        }
        self.seq += 1
        self.deltas = {}
        return chunk


class ChunkPoster:
    """The thread posting every open Outbox; `check()` re-raises a relay failure in the caller's thread."""

    def __init__(self, relay: RelayClient) -> None:
        self.relay = relay
        self.wakeup = threading.Condition()
        self.outboxes: list[Outbox] = []
        self.gone = False
        self.failure: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="relay-chunks", daemon=True)
        self._thread.start()

    def open(self, request_id: str) -> Outbox:
        outbox = Outbox(self, request_id)
        with self.wakeup:
            self.outboxes.append(outbox)
        return outbox

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        """Posts what is still pending (replies that will get no more text are not waited for), then stops."""
        with self.wakeup:
            self._closing = True
            self.wakeup.notify()
        self._thread.join(GIVE_UP_AFTER_S + 30)

    def _run(self) -> None:
        while True:
            with self.wakeup:
                outbox = self._wait_for_due_outbox()
                if outbox is None:
                    return
                chunk = outbox.take_chunk()
            try:
                cancelled = self.relay.post_chunk(outbox.request_id, chunk)
            except RelayGone:
                self.gone = True
                return
            except RelayRejected as error:
                # The API will not take this reply (e.g. it no longer knows the request): drop it, serve the rest.
                log.warning("dropping the reply to %s: %s", outbox.request_id, error)
                cancelled = True
            except BaseException as error:  # noqa: BLE001 — handed to the serving thread through check()
                self.failure = error
                return
            with self.wakeup:
                outbox.posted_at = time.monotonic()
                outbox.cancelled = cancelled
                if cancelled or any(chunk.get(end) is not None for end in ("done", "sampled", "error")):
                    self.outboxes.remove(outbox)

    def _wait_for_due_outbox(self) -> Outbox | None:
        """The outbox whose chunk is most overdue, waiting until one is due; None once closed and drained."""
        while True:
            now = time.monotonic()
            pending = [(due, outbox) for outbox in self.outboxes if (due := outbox.due_at()) is not None]
            if not pending:
                if self._closing:
                    return None
                self.wakeup.wait()
                continue
            due, outbox = min(pending, key=lambda item: item[0])
            if due <= now:
                return outbox
            self.wakeup.wait(due - now)
