"""The sampler's side of the relay (functions/schemas/relay.ts): fetching requests and posting chunks.

The API may restart while a sampler runs, so connection errors, 429 and 5xx answers are retried
with a short backoff; only a relay that stays unreachable for GIVE_UP_AFTER_S fails the job.
That transport (RelayCalls) also carries the trainer's relay calls (trainer/relay.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import quote

import requests
from jsonschema.exceptions import best_match

from bakehouse_engine.errors import JobFailure
from bakehouse_engine.spec import contract_validator

GIVE_UP_AFTER_S = 120.0
_FIRST_BACKOFF_S = 0.25
_MAX_BACKOFF_S = 5.0
# Beyond the long poll's own wait: time for the API to answer once it has something.
_ANSWER_TIMEOUT_S = 15.0

# The relay's request variants, by `kind`, and their definitions in the contract.
_REQUEST_KINDS = {"chat": "ChatSamplerRequest", "tokens": "TokenSamplerRequest"}

log = logging.getLogger(__name__)


class RelayGone(Exception):
    """The API answered 410: this job is no longer its base model's sampler and should stop."""


class RelayRejected(JobFailure):
    """The API refused a call with a 4xx other than 401 and 410; retrying would not help."""


class InvalidRequest(Exception):
    """A fetched request breaks the relay contract; it can still be answered with an error chunk."""

    def __init__(self, request: Any, message: str) -> None:
        super().__init__(message)
        self.request_id = request.get("id") if isinstance(request, dict) and isinstance(request.get("id"), str) else None


class RelayCalls:
    """POSTs to the relay routes of one long-running job with its bearer token, retrying what a restart
    of the API explains; safe to use from several threads. ROLE is the job kind the routes are named by."""

    ROLE = "sampler"

    def __init__(self, relay_url: str, job_id: int, token: str) -> None:
        self.base = f"{relay_url.rstrip('/')}/v1/relay/{self.ROLE}s/{job_id}"
        self.token = token
        self._local = threading.local()  # a requests.Session is not meant to be shared between threads

    def _post(self, path: str, body: dict, timeout: float) -> Any:
        failing_since: float | None = None
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                response = self._session().post(self.base + path, json=body, timeout=timeout)
            except requests.RequestException as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 401:
                    raise JobFailure(
                        f"The relay refused the {self.ROLE}'s token (401); the job spec's relay_token is not the one "
                        f"the API issued for this {self.ROLE}. Start a new {self.ROLE}."
                    )
                if response.status_code == 410:
                    raise RelayGone()
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise JobFailure(f"The relay's answer to {path} is not JSON: {response.text[:200]}") from error
                if response.status_code < 500 and response.status_code != 429:
                    raise RelayRejected(f"The relay refused {path} ({response.status_code}): {response.text[:300]}")
                problem = f"HTTP {response.status_code}"
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since >= GIVE_UP_AFTER_S:
                raise JobFailure(
                    f"The relay at {self.base} could not be reached for {GIVE_UP_AFTER_S:.0f} s ({problem}); "
                    f"check that the API is running and reachable from the {self.ROLE}."
                )
            log.warning("relay %s failed (%s); retrying in %.2f s", path, problem, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token}"
        return session


class RelayClient(RelayCalls):
    """The sampler's relay calls: fetching chat requests and posting reply chunks."""

    def next(self, wait_s: float, limit: int) -> tuple[list[dict], list[InvalidRequest]]:
        """Up to `limit` requests, waiting at most `wait_s` for the first: (valid ones, invalid ones)."""
        answer = self._post("/next", {"wait_s": round(wait_s, 3), "max": limit}, wait_s + _ANSWER_TIMEOUT_S)
        if not isinstance(answer, dict) or not isinstance(answer.get("requests"), list):
            raise JobFailure(f"The relay's answer to /next is not a RelayNextResponse: {str(answer)[:200]}")
        valid, invalid = [], []
        for request in answer["requests"]:
            kind = request.get("kind") if isinstance(request, dict) else None
            if kind not in _REQUEST_KINDS:
                invalid.append(InvalidRequest(request, f"The request's kind {kind!r} is not one this sampler serves."))
                continue
            # Against the kind's own definition: a oneOf over both would only say "not valid under any".
            validator = contract_validator("relay-next-response.schema.json", _REQUEST_KINDS[kind])
            error = best_match(validator.iter_errors(request))
            if error is None:
                valid.append(request)
            else:
                where = "/".join(str(part) for part in error.absolute_path) or "(root)"
                invalid.append(InvalidRequest(request, f"The request is invalid at {where}: {error.message}."))
        return valid, invalid

    def post_chunk(self, request_id: str, chunk: dict) -> bool:
        """Posts one RelayChunk; True when the API says nobody waits for this reply any more."""
        ack = self._post(f"/requests/{quote(request_id, safe='')}/chunks", chunk, _ANSWER_TIMEOUT_S)
        return isinstance(ack, dict) and ack.get("cancelled") is True
