"""Sampler jobs end to end on the tiny model: the real job through cli.run_job, against a fake relay."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from bakehouse_engine.cli import run_job
from bakehouse_engine.models import load_model, render_chat
from fake_relay import TOKEN, FakeRelay, serve
from job_harness import TINY_MODEL, tiny_model, tiny_model_cache  # noqa: F401 — fixtures
from test_models import save_random_adapter

SEA = "Tell me about the sea."
BREAD = "How do I bake bread?"


@pytest.fixture
def relay(tiny_model):
    with serve(FakeRelay()) as fake:
        yield fake


def chat(request_id: str, question: str = SEA, adapters: list[dict] | None = None, **params: object) -> dict:
    settings = {"n": 1, "temperature": 0, "top_p": 1, "max_tokens": 12, "stop": [], "seed": None, "chat_template_kwargs": {}}
    settings.update(params)
    return {
        "kind": "chat",
        "id": request_id,
        "model": {"base_model": TINY_MODEL, "adapters": adapters or []},
        "messages": [{"role": "user", "content": question}],
        "tools": None,
        "params": settings,
    }


def run_sampler(tmp_path: Path, relay: FakeRelay, **settings: object) -> tuple[int, dict]:
    out = tmp_path / "out"
    spec = {
        "version": 1,
        "job_id": 5,
        "output_uri": out.as_uri() + "/",
        "kind": "sampler",
        "sampler": {
            "base_model": TINY_MODEL,
            "relay_url": relay.url,
            "relay_token": TOKEN,
            "idle_timeout_s": 1,
            "max_hot_adapters": 2,
            "max_batch": 8,
            "max_unset_tokens": 4096,
            **settings,
        },
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    code = run_job(str(spec_path))
    return code, json.loads((out / "result.json").read_text())


def serve_once(tmp_path: Path, relay: FakeRelay, *requests: dict, **settings: object) -> FakeRelay:
    relay.push(*requests)
    assert run_sampler(tmp_path, relay, **settings) == (0, {"status": "complete", "error": None})
    return relay


def greedy_reply(model, tokenizer, question: str, max_tokens: int) -> str:
    """What plain greedy generation answers, decoded the way the sampler streams it."""
    prompt = render_chat(tokenizer, [{"role": "user", "content": question}])
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        output = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_tokens)
    new = output[0, ids.shape[1] :].tolist()
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    new = new[: next((i for i, token in enumerate(new) if token in ends), len(new))]
    return tokenizer.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_a_request_streams_numbered_deltas_that_add_up_to_the_greedy_reply(tmp_path, relay, tiny_model_cache):
    serve_once(tmp_path, relay, chat("r1", max_tokens=20))

    chunks = relay.chunks["r1"]
    assert [chunk["seq"] for chunk in chunks] == list(range(len(chunks)))
    assert all(chunk["done"] is None and chunk["error"] is None for chunk in chunks[:-1])
    assert chunks[0]["deltas"] and chunks[0]["deltas"][0]["content"]  # the first text is not held for the end
    done = chunks[-1]["done"]
    model, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": []}, None, "cpu")
    assert relay.text("r1") == greedy_reply(model, tokenizer, SEA, 20)
    prompt = render_chat(tokenizer, [{"role": "user", "content": SEA}])
    assert done["usage"]["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    (choice,) = done["choices"]
    assert choice["index"] == 0 and choice["tool_calls"] is None
    tokens = done["usage"]["completion_tokens"]
    assert (choice["finish_reason"], tokens) == ("length", 20) or (choice["finish_reason"] == "stop" and tokens <= 20)
    # A long poll for a full batch, then a quick look for requests sent at the same moment.
    assert relay.next_calls[:2] == [{"wait_s": 1, "max": 8}, {"wait_s": 0, "max": 7}]


def test_n_choices_seeds_and_batching(tmp_path, relay):
    seeded = chat("seeded", BREAD, temperature=1.0, seed=11, n=2, max_tokens=16)
    serve_once(tmp_path / "alone", relay, seeded)
    alone = [relay.text("seeded", index) for index in range(2)]
    alone_done = relay.last("seeded")["done"]
    assert [choice["index"] for choice in alone_done["choices"]] == [0, 1]
    assert alone[0] != alone[1]  # each choice has its own stream

    relay.chunks.clear()
    others = [chat("other", temperature=0.7, top_p=0.9, n=3), chat("greedy", "What is the capital of France?")]
    serve_once(tmp_path / "batched", relay, others[0], seeded | {"id": "again"}, others[1])
    assert [relay.text("again", index) for index in range(2)] == alone
    assert relay.last("again")["done"] == alone_done
    assert len(relay.last("other")["done"]["choices"]) == 3


def test_stop_strings_cut_the_reply_and_are_never_streamed(tmp_path, relay):
    serve_once(tmp_path / "free", relay, chat("free", max_tokens=16))
    free = relay.text("free")
    stop = free[4:6]
    serve_once(tmp_path / "cut", relay, chat("cut", max_tokens=16, stop=["never there", stop]))
    assert relay.text("cut") == free[: free.index(stop)]
    assert relay.last("cut")["done"]["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_ends_with_length_and_template_kwargs_reach_the_template(tmp_path, relay):
    plain = chat("plain", max_tokens=3)
    thinking_off = chat("off", max_tokens=3, chat_template_kwargs={"enable_thinking": False})
    serve_once(tmp_path, relay, plain, thinking_off)
    done = relay.last("plain")["done"]
    assert done["choices"][0]["finish_reason"] == "length" and done["usage"]["completion_tokens"] == 3
    # The tiny template writes an empty think block when thinking is off: a longer prompt.
    assert relay.last("off")["done"]["usage"]["prompt_tokens"] > done["usage"]["prompt_tokens"]


def test_each_adapter_chain_in_a_batch_answers_as_its_merged_model(tmp_path, relay, tiny_model_cache):
    base_dir = tiny_model_cache / TINY_MODEL
    first = {"model_name": "u/r/first/1", "uri": save_random_adapter(base_dir, tmp_path / "first", seed=1).as_uri() + "/"}
    second = {"model_name": "u/r/second/2", "uri": save_random_adapter(base_dir, tmp_path / "second", seed=2).as_uri() + "/"}
    chains = {"base": [], "first": [first], "both": [first, second]}
    serve_once(tmp_path, relay, *(chat(name, adapters=chain, max_tokens=12) for name, chain in chains.items()))

    replies = {name: relay.text(name) for name in chains}
    assert len(set(replies.values())) == 3
    for name, chain in chains.items():
        model, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": chain}, None, "cpu")
        assert replies[name] == greedy_reply(model, tokenizer, SEA, 12), name


def test_requests_that_cannot_be_served_get_an_error_and_the_rest_are_served(tmp_path, relay):
    missing = {"model_name": "u/r/gone/1", "uri": (tmp_path / "no-adapter").as_uri() + "/"}
    invalid = chat("invalid")
    del invalid["params"]["n"]
    serve_once(
        tmp_path,
        relay,
        chat("bad-adapter", adapters=[missing]),
        chat("too-long", "sea " * 300),
        invalid,
        chat("fine"),
    )
    assert relay.chunks["bad-adapter"] == [
        {"seq": 0, "deltas": [], "done": None, "error": relay.last("bad-adapter")["error"]}
    ]
    assert "u/r/gone/1 could not be loaded" in relay.last("bad-adapter")["error"]
    assert "does not fit the model's 256-token context" in relay.last("too-long")["error"]
    assert "params" in relay.last("invalid")["error"]
    assert relay.last("fine")["done"] is not None


def test_a_cancelled_reply_gets_nothing_more(tmp_path, relay):
    relay.cancel = {"cancelled"}
    serve_once(tmp_path, relay, chat("cancelled", temperature=1.0, max_tokens=200), chat("kept", max_tokens=8))
    assert len(relay.chunks["cancelled"]) == 1 and relay.last("cancelled")["done"] is None
    assert relay.last("kept")["done"] is not None


def test_an_idle_sampler_completes_after_its_timeout_riding_out_relay_restarts(tmp_path, relay):
    relay.failures_left = 2
    started = time.monotonic()
    assert run_sampler(tmp_path, relay, idle_timeout_s=1) == (0, {"status": "complete", "error": None})
    assert 1 <= time.monotonic() - started < 10
    assert relay.next_calls and all(call["wait_s"] <= 1 for call in relay.next_calls)


def test_a_410_stops_the_sampler_and_completes_the_job(tmp_path, relay):
    relay.status = 410
    started = time.monotonic()
    assert run_sampler(tmp_path, relay, idle_timeout_s=60) == (0, {"status": "complete", "error": None})
    assert time.monotonic() - started < 10


def test_a_refused_token_fails_the_job_with_a_sentence(tmp_path, relay):
    relay.status = 401
    code, result = run_sampler(tmp_path, relay, idle_timeout_s=60)
    assert code == 1 and result["status"] == "failed"
    assert result["error"].startswith("The relay refused the sampler's token")


def test_a_relay_that_stays_down_fails_the_job(tmp_path, relay, monkeypatch):
    monkeypatch.setattr("bakehouse_engine.sampler.relay.GIVE_UP_AFTER_S", 0.5)
    relay.status = 503
    code, result = run_sampler(tmp_path, relay, idle_timeout_s=60)
    assert code == 1 and "could not be reached" in result["error"]
