"""Sampler jobs: a long-running sampler for one base model, reached by relay (DESIGN.md §1).

Batch jobs accept no inbound connections, so the sampler calls out (relay.py): it long-polls the API
for chat and token-level requests, generates them in batches (generation.py), each row with its
checkpoint's adapter chain on the shared base model (adapters.py; requests for different checkpoints
share a batch), and streams every chat reply back as numbered chunks (replies.py, outbox.py), or
posts a token-level request's sequences and log-probs as one chunk (tokens.py). The job completes when no
request has come for `idle_timeout_s` (the API starts a new sampler on the next one) or when the API
answers 410 (another sampler took over).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from bakehouse_engine.errors import RequestFailure
from bakehouse_engine.models import load_model, pick_device
from bakehouse_engine.sampler.adapters import HotAdapters, cache_key
from bakehouse_engine.sampler.generation import ReplyGenerator
from bakehouse_engine.sampler.outbox import ChunkPoster
from bakehouse_engine.sampler.relay import RelayClient, RelayGone
from bakehouse_engine.sampler.replies import Reply
from bakehouse_engine.sampler.tokens import TokenReply

if TYPE_CHECKING:
    from bakehouse_engine.context import JobContext

# Long polls stay well under the relay's 30 s limit and common proxy timeouts.
MAX_WAIT_S = 20.0
# After a first request arrives, others sent at about the same moment get to join its batch.
GATHER_S = 0.015

log = logging.getLogger(__name__)


class Sampler:
    def __init__(
        self, settings: dict, relay: RelayClient, poster: ChunkPoster, generator: ReplyGenerator, adapters: HotAdapters
    ) -> None:
        self.settings = settings
        self.relay = relay
        self.poster = poster
        self.generator = generator
        self.adapters = adapters

    def serve(self) -> None:
        """Serves requests until none has come for `idle_timeout_s`, or the relay says this sampler is gone."""
        last_request = time.monotonic()
        while not self.poster.gone:
            self.poster.check()
            left = self.settings["idle_timeout_s"] - (time.monotonic() - last_request)
            if left <= 0:
                log.info("no request for %s s; the sampler stops", self.settings["idle_timeout_s"])
                return
            requests = self._fetch(min(MAX_WAIT_S, left))
            if requests:
                self._serve_batch(requests)
                last_request = time.monotonic()

    def _fetch(self, wait_s: float) -> list[dict]:
        limit = self.settings["max_batch"]
        requests, invalid = self.relay.next(wait_s, limit)
        if requests and len(requests) + len(invalid) < limit:
            time.sleep(GATHER_S)
            more, more_invalid = self.relay.next(0, limit - len(requests) - len(invalid))
            requests, invalid = requests + more, invalid + more_invalid
        for bad in invalid:
            log.warning("%s", bad)
            if bad.request_id is not None:
                self.poster.open(bad.request_id).fail(str(bad))
        return requests

    def _serve_batch(self, requests: list[dict]) -> None:
        """Generates the requests together, each with its adapter chain; one that cannot be served gets an error chunk.

        Requests for one chain run with its adapters active. Requests for different chains share one
        mixed batch, each row with the one adapter that stands for its chain; a chain that no single
        adapter can stand for is generated on its own after it.
        """
        by_chain: dict[tuple[str, ...], list[Reply | TokenReply]] = {}
        for request in requests:
            outbox = self.poster.open(request["id"])
            try:
                wanted, served = request["model"]["base_model"], self.settings["base_model"]
                if wanted != served:
                    raise RequestFailure(f"This sampler serves {served}, not {wanted}.")
                reply = self.generator.prepare(request, outbox)
            except RequestFailure as error:
                outbox.fail(str(error))
                continue
            by_chain.setdefault(tuple(cache_key(adapter) for adapter in request["model"]["adapters"]), []).append(reply)
        if not by_chain:
            return
        if len(by_chain) == 1:
            (replies,) = by_chain.values()
            self._generate(replies, None)
            return
        with self.adapters.batch([replies[0].request["model"]["adapters"] for replies in by_chain.values()]):
            mixed: list[Reply | TokenReply] = []
            names: list[str] = []
            alone: list[list[Reply | TokenReply]] = []
            for replies in by_chain.values():
                try:
                    name = self.adapters.row_adapter(replies[0].request["model"]["adapters"])
                except RequestFailure as error:
                    for reply in replies:
                        reply.outbox.fail(str(error))
                    continue
                if name is None:
                    alone.append(replies)
                else:
                    mixed += replies
                    names += [name] * len(replies)
            self.adapters.trim()
            if mixed:
                self._generate(mixed, names)
            for replies in alone:
                self._generate(replies, None)

    def _generate(self, replies: list[Reply | TokenReply], adapter_names: list[str] | None) -> None:
        """One generate call: every reply with its adapter from `adapter_names`, or all with their shared chain."""
        chains = len(set(adapter_names)) if adapter_names else 1
        log.info(
            "generating %d request(s), %d row(s), %d adapter chain(s)",
            len(replies), sum(len(reply.choices) for reply in replies), chains,
        )
        try:
            if adapter_names is None:
                self.adapters.activate(replies[0].request["model"]["adapters"])
            self.generator.generate(replies, adapter_names)
        except RequestFailure as error:
            for reply in replies:
                reply.outbox.fail(str(error))
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            for reply in replies:
                if reply.outbox.ending is None:
                    reply.outbox.fail("The sampler ran out of memory for this reply; ask for fewer choices or tokens.")


def run(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.spec["sampler"]
    model, tokenizer = load_model({"base_model": settings["base_model"], "adapters": []}, None, pick_device())
    relay = RelayClient(settings["relay_url"], ctx.spec["job_id"], settings["relay_token"])
    poster = ChunkPoster(relay)
    adapters = HotAdapters(model, ctx.workdir / "adapters", settings["max_hot_adapters"])
    generator = ReplyGenerator(model, tokenizer, adapters, settings["max_unset_tokens"])
    sampler = Sampler(settings, relay, poster, generator, adapters)
    try:
        sampler.serve()
    except RelayGone:
        log.info("the relay answered 410: another sampler serves %s now", settings["base_model"])
    finally:
        poster.close()
    poster.check()
    return {}
