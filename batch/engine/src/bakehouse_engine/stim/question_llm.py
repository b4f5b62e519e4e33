"""The LLM that writes questions for `oneshot_qs` and `custom` generators.

Two wire formats, picked from the engine's environment: the Anthropic Messages API
(ANTHROPIC_API_KEY, optional ANTHROPIC_BASE_URL) — what upstream generators name, e.g.
claude-sonnet-4-5-20250929 — or any OpenAI-compatible chat endpoint (OPENAI_API_KEY, optional
OPENAI_BASE_URL). Plain urllib: a stim job needs no SDK.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bakehouse_engine.errors import JobFailure

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_VERSION = "2023-06-01"
REQUEST_TIMEOUT_S = 180.0
ATTEMPTS = 4
RETRY_BASE_DELAY_S = 2.0
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


@dataclass(frozen=True)
class Completion:
    text: str
    truncated: bool  # the reply hit max_tokens, so its last line may be cut short


@dataclass(frozen=True)
class QuestionLLM:
    wire: str  # "anthropic" or "openai"
    base_url: str
    api_key: str
    model: str

    def complete(self, prompt: str, temperature: float, max_tokens: int) -> Completion:
        if self.wire == "anthropic":
            reply = _post_json(
                f"{self.base_url}/v1/messages",
                {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION},
                {
                    "model": self.model,
                    "max_tokens": max_tokens,
                    # The Messages API accepts 0–1; generators allow up to 2.
                    "temperature": min(temperature, 1.0),
                    "messages": [{"role": "user", "content": prompt}],
                },
                self.model,
            )
            text = "".join(block.get("text", "") for block in reply.get("content", []) if block.get("type") == "text")
            return Completion(text, reply.get("stop_reason") == "max_tokens")
        reply = _post_json(
            f"{self.base_url}/chat/completions",
            {"authorization": f"Bearer {self.api_key}"},
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": temperature,
                "max_tokens": max_tokens,
            },
            self.model,
        )
        choice = (reply.get("choices") or [{}])[0]
        return Completion((choice.get("message") or {}).get("content") or "", choice.get("finish_reason") == "length")


def question_llm_from_env(model: str | None, label: str) -> QuestionLLM:
    if key := os.environ.get("ANTHROPIC_API_KEY"):
        base = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        return QuestionLLM("anthropic", base.rstrip("/"), key, model or DEFAULT_ANTHROPIC_MODEL)
    if key := os.environ.get("OPENAI_API_KEY"):
        base = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return QuestionLLM("openai", base.rstrip("/"), key, model or DEFAULT_OPENAI_MODEL)
    raise JobFailure(
        f"{label} writes its questions with an LLM, but none is configured: set ANTHROPIC_API_KEY "
        "(Anthropic Messages API), or OPENAI_API_KEY with OPENAI_BASE_URL (any OpenAI-compatible chat "
        "endpoint), in the engine's environment."
    )


def _post_json(url: str, headers: dict[str, str], body: dict[str, Any], model: str) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"content-type": "application/json", **headers}
    )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            detail = _error_detail(error)
            if error.code not in RETRYABLE_STATUS or attempt == ATTEMPTS:
                raise JobFailure(
                    f"The question LLM at {url} (model {model}) answered HTTP {error.code}: {detail}"
                ) from error
            time.sleep(_retry_delay(error, attempt))
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            if attempt == ATTEMPTS:
                reason = getattr(error, "reason", error)
                raise JobFailure(f"The question LLM at {url} could not be reached: {reason}.") from error
            time.sleep(RETRY_BASE_DELAY_S * 2 ** (attempt - 1))
        except json.JSONDecodeError as error:
            raise JobFailure(f"The question LLM at {url} answered with something that is not JSON.") from error
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_delay(error: urllib.error.HTTPError, attempt: int) -> float:
    retry_after = error.headers.get("retry-after") if error.headers else None
    try:
        return min(float(retry_after), 60.0) if retry_after else RETRY_BASE_DELAY_S * 2 ** (attempt - 1)
    except ValueError:
        return RETRY_BASE_DELAY_S * 2 ** (attempt - 1)


def _error_detail(error: urllib.error.HTTPError) -> str:
    """The API's own message (both formats nest it under error.message), else the raw body."""
    raw = error.read().decode("utf-8", "replace")
    try:
        message = json.loads(raw).get("error", {}).get("message")
    except (json.JSONDecodeError, AttributeError):
        message = None
    return (message or raw or error.reason or "no detail").strip()
