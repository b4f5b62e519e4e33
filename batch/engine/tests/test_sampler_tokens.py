"""Token-level sampling (relay.ts TokenSamplerRequest) on the tiny model, checked against direct forward passes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from jsonschema import Draft202012Validator

from bakehouse_engine.models import load_model, render_chat
from bakehouse_engine.sampler import Sampler
from bakehouse_engine.sampler.adapters import HotAdapters
from bakehouse_engine.sampler.generation import ReplyGenerator, top_k_filter
from bakehouse_engine.sampler.tokens import TokenReply
from bakehouse_engine.spec import contract_dir
from fake_relay import FakeRelay, serve
from job_harness import TINY_MODEL, tiny_model, tiny_model_cache  # noqa: F401 — fixtures
from memory_outbox import MemoryPoster
from test_models import save_random_adapter
from test_sampler import BREAD, SEA, chat, run_sampler

TOLERANCE = 1e-4


def sample(request_id: str, prompt: list[int], adapters: list[dict] | None = None, **params: object) -> dict:
    settings = {
        "prompt_tokens": prompt, "n": 1, "temperature": 0, "top_p": 1, "top_k": 0, "max_tokens": 8, "seed": None,
        "stop": [], "stop_token_ids": [], "prompt_logprobs": None,
    }
    settings.update(params)
    return {"kind": "tokens", "id": request_id, "model": {"base_model": TINY_MODEL, "adapters": adapters or []}, "sample": settings}


@pytest.fixture
def served(tiny_model, tmp_path):
    """Serves batches of requests in-process; returns what each request ended with."""
    model, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": []}, None, "cpu")
    hot = HotAdapters(model, tmp_path / "hot", capacity=4)
    poster = MemoryPoster()
    sampler = Sampler({"base_model": TINY_MODEL}, None, poster, ReplyGenerator(model, tokenizer, hot), hot)

    def serve_batch(*requests: dict) -> dict[str, dict]:
        sampler._serve_batch(list(requests))
        return {request["id"]: poster.boxes.pop(request["id"]).ending for request in requests}

    serve_batch.tokenizer = tokenizer
    return serve_batch


def prompt_of(tokenizer, question: str = SEA) -> list[int]:
    return tokenizer(render_chat(tokenizer, [{"role": "user", "content": question}]), add_special_tokens=False)["input_ids"]


def raw_logprobs(ids: list[int], chain: list[dict] | None = None) -> torch.Tensor:
    """log_softmax of the (merged) model's logits over `ids`: row j scores the token after position j."""
    model, _ = load_model({"base_model": TINY_MODEL, "adapters": chain or []}, None, "cpu")
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)


def sequence_logprobs(prompt: list[int], tokens: list[int], chain: list[dict] | None = None) -> list[float]:
    scored = raw_logprobs(prompt + tokens, chain)
    return [scored[len(prompt) - 1 + i, token].item() for i, token in enumerate(tokens)]


def only(ending: dict) -> dict:
    assert ending["error"] is None and ending["done"] is None, ending
    return ending["sampled"]


def test_greedy_sampling_is_deterministic_and_its_logprobs_are_the_models(served):
    prompt = prompt_of(served.tokenizer)
    first = only(served(sample("a", prompt, max_tokens=10))["a"])
    again = only(served(sample("b", prompt, max_tokens=10))["b"])
    assert first == again
    (sequence,) = first["sequences"]
    scored = raw_logprobs(prompt + sequence["tokens"])
    greedy = [int(scored[len(prompt) - 1 + i].argmax()) for i in range(len(sequence["tokens"]))]
    assert sequence["tokens"] == greedy
    assert sequence["logprobs"] == pytest.approx(sequence_logprobs(prompt, sequence["tokens"]), abs=TOLERANCE)
    assert first["prompt_tokens"] == prompt and first["prompt_logprobs"] is None and first["topk_prompt_logprobs"] is None


def test_sampled_logprobs_are_raw_not_tempered_or_truncated(served):
    prompt = prompt_of(served.tokenizer, BREAD)
    result = only(served(sample("hot", prompt, temperature=1.7, top_k=5, top_p=0.8, seed=3, n=2, max_tokens=12))["hot"])
    for sequence in result["sequences"]:
        raw = sequence_logprobs(prompt, sequence["tokens"])
        assert sequence["logprobs"] == pytest.approx(raw, abs=TOLERANCE)
        # Drawn from the top 5 only: every token is among the 5 most likely at its position.
        scored = raw_logprobs(prompt + sequence["tokens"])
        for i, token in enumerate(sequence["tokens"]):
            assert token in scored[len(prompt) - 1 + i].topk(5).indices.tolist()


def test_the_models_own_generation_defaults_never_change_the_logits(tiny_model, tmp_path):
    model, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": []}, None, "cpu")
    model.generation_config.repetition_penalty = 5.0  # what a generation_config.json may suggest
    model.generation_config.no_repeat_ngram_size = 1
    poster = MemoryPoster()
    hot = HotAdapters(model, tmp_path / "hot", capacity=1)
    sampler = Sampler({"base_model": TINY_MODEL}, None, poster, ReplyGenerator(model, tokenizer, hot), hot)
    prompt = prompt_of(tokenizer)
    sampler._serve_batch([sample("a", prompt, max_tokens=10)])
    (sequence,) = only(poster.boxes["a"].ending)["sequences"]
    assert sequence["logprobs"] == pytest.approx(sequence_logprobs(prompt, sequence["tokens"]), abs=TOLERANCE)


def test_a_seed_reproduces_each_sequence_whatever_shares_the_batch(served):
    prompt = prompt_of(served.tokenizer, BREAD)
    seeded = sample("seeded", prompt, temperature=1.0, seed=11, n=4, max_tokens=12)
    alone = only(served(seeded)["seeded"])
    assert len(alone["sequences"]) == 4
    assert len({tuple(sequence["tokens"]) for sequence in alone["sequences"]}) > 1  # each sequence has its own stream
    batched = served(
        sample("other", prompt_of(served.tokenizer), temperature=0.7, n=3),
        seeded | {"id": "again"},
        chat("chat", max_tokens=6),
    )
    again = only(batched["again"])
    assert [s["tokens"] for s in again["sequences"]] == [s["tokens"] for s in alone["sequences"]]
    for ours, theirs in zip(again["sequences"], alone["sequences"]):
        assert ours["logprobs"] == pytest.approx(theirs["logprobs"], abs=TOLERANCE)
    assert len(only(batched["other"])["sequences"]) == 3
    assert batched["chat"]["done"]["choices"][0]["finish_reason"] in ("stop", "length")
    unseeded = [only(served(sample(f"u{i}", prompt, temperature=1.0, max_tokens=12))[f"u{i}"]) for i in range(3)]
    assert len({tuple(result["sequences"][0]["tokens"]) for result in unseeded}) > 1


def test_top_k_of_one_is_greedy(served):
    prompt = prompt_of(served.tokenizer)
    greedy = only(served(sample("g", prompt, max_tokens=10))["g"])["sequences"][0]["tokens"]
    result = only(served(sample("k1", prompt, temperature=1.0, top_k=1, n=3, seed=5, max_tokens=10))["k1"])
    assert [sequence["tokens"] for sequence in result["sequences"]] == [greedy] * 3


def test_top_k_filters_each_row_with_its_own_k():
    scores = torch.tensor([[0.0, 3.0, 1.0, 2.0]] * 3)
    kept = top_k_filter(scores, torch.tensor([2, 0, 10])).isfinite()
    assert kept.tolist() == [[False, True, False, True], [True] * 4, [True] * 4]


def test_prompt_logprobs_and_their_top_k_match_a_forward_pass(served):
    prompt = prompt_of(served.tokenizer)
    # compute_logprobs: one greedy token and the prompt's own log-probs.
    result = only(served(sample("lp", prompt, max_tokens=1, prompt_logprobs=0))["lp"])
    scored = raw_logprobs(prompt)
    assert result["prompt_logprobs"][0] is None and len(result["prompt_logprobs"]) == len(prompt)
    assert result["prompt_logprobs"][1:] == pytest.approx([scored[j - 1, prompt[j]].item() for j in range(1, len(prompt))], abs=TOLERANCE)
    assert result["topk_prompt_logprobs"] is None
    assert len(result["sequences"][0]["tokens"]) == 1

    topk = only(served(sample("top", prompt, max_tokens=1, prompt_logprobs=3))["top"])
    assert topk["prompt_logprobs"][0] is None
    assert topk["prompt_logprobs"][1:] == pytest.approx(result["prompt_logprobs"][1:], abs=TOLERANCE)
    assert topk["topk_prompt_logprobs"][0] is None
    for j in range(1, len(prompt)):
        values, ids = scored[j - 1].topk(3)
        assert [pair[0] for pair in topk["topk_prompt_logprobs"][j]] == ids.tolist()
        assert [pair[1] for pair in topk["topk_prompt_logprobs"][j]] == pytest.approx(values.tolist(), abs=TOLERANCE)


def test_stop_token_ids_and_stop_strings_end_a_sequence_with_the_ending_token_kept(served):
    tokenizer = served.tokenizer
    prompt = prompt_of(tokenizer)
    free = only(served(sample("free", prompt, max_tokens=16))["free"])["sequences"][0]
    assert free["finish_reason"] == "length" and len(free["tokens"]) == 16
    tokens = free["tokens"]
    # The first token that did not occur before it: stopping on it ends the sequence right there.
    cut = next(i for i in range(2, len(tokens)) if tokens[i] not in tokens[:i])
    by_id = only(served(sample("id", prompt, max_tokens=16, stop_token_ids=[tokens[cut]]))["id"])["sequences"][0]
    assert (by_id["tokens"], by_id["finish_reason"]) == (tokens[: cut + 1], "stop")
    assert by_id["logprobs"] == pytest.approx(free["logprobs"][: cut + 1], abs=TOLERANCE)

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    stop = decode(tokens[: cut + 1])[-2:]
    assert stop.strip()
    first = next(i for i in range(len(tokens)) if stop in decode(tokens[: i + 1]))
    by_text = only(served(sample("text", prompt, max_tokens=16, stop=["never there", stop]))["text"])["sequences"][0]
    assert (by_text["tokens"], by_text["finish_reason"]) == (tokens[: first + 1], "stop")


def test_the_end_of_sequence_token_is_kept_and_ends_the_sequence_with_stop():
    ended = []
    outbox = type("Outbox", (), {"finish_sample": lambda self, result: ended.append(result)})()
    reply = TokenReply(sample("e", [1, 2], n=1, max_tokens=5), limit=5, outbox=outbox)
    for token, logprob in [(5, -0.5), (6, -1.0), (0, -2.0)]:
        reply.advance(reply.choices[0], token, {0}, lambda ids: "", logprob=logprob)
    assert ended == [{
        "sequences": [{"tokens": [5, 6, 0], "logprobs": [-0.5, -1.0, -2.0], "finish_reason": "stop"}],
        "prompt_tokens": [1, 2], "prompt_logprobs": None, "topk_prompt_logprobs": None,
    }]


def test_a_stop_string_ends_a_long_sequence_at_the_token_completing_it():
    ended = []
    outbox = type("Outbox", (), {"finish_sample": lambda self, result: ended.append(result)})()
    reply = TokenReply(sample("s", [1], max_tokens=500, stop=["xyz"]), limit=500, outbox=outbox)
    letters = "ab" * 100 + "xy" + "z" + "cd"  # one character per token; the stop string ends at token 202

    def decode(ids: list[int]) -> str:
        return "".join(letters[i] for i in ids)

    for index in range(len(letters)):
        if reply.choices[0].finish_reason is None:
            reply.advance(reply.choices[0], index, set(), decode, logprob=-1.0)
    (sequence,) = ended[0]["sequences"]
    assert (sequence["tokens"], sequence["finish_reason"]) == (list(range(203)), "stop")


def test_an_adapter_changes_the_sequences_and_its_logprobs_are_the_merged_models(served, tiny_model_cache, tmp_path):
    path = save_random_adapter(tiny_model_cache / TINY_MODEL, tmp_path / "lora", seed=4)
    adapter = {"model_name": "bt://loops:run/sampler_weights/a", "uri": path.as_uri() + "/", "version": "1"}
    prompt = prompt_of(served.tokenizer)
    base = only(served(sample("base", prompt, max_tokens=10, prompt_logprobs=0))["base"])
    tuned = only(served(sample("tuned", prompt, [adapter], max_tokens=10, prompt_logprobs=0))["tuned"])
    assert tuned["sequences"][0]["tokens"] != base["sequences"][0]["tokens"]
    assert tuned["prompt_logprobs"][1:] != pytest.approx(base["prompt_logprobs"][1:], abs=TOLERANCE)
    merged = raw_logprobs(prompt, [adapter])
    assert tuned["prompt_logprobs"][1:] == pytest.approx([merged[j - 1, prompt[j]].item() for j in range(1, len(prompt))], abs=TOLERANCE)
    sequence = tuned["sequences"][0]
    assert sequence["logprobs"] == pytest.approx(sequence_logprobs(prompt, sequence["tokens"], [adapter]), abs=TOLERANCE)
    # Base and adapter rows in one mixed batch answer as each alone.
    mixed = served(sample("base2", prompt, max_tokens=10), sample("tuned2", prompt, [adapter], max_tokens=10))
    assert only(mixed["base2"])["sequences"][0]["tokens"] == base["sequences"][0]["tokens"]
    assert only(mixed["tuned2"])["sequences"][0]["tokens"] == sequence["tokens"]


def test_a_checkpoint_saved_again_under_its_name_is_reloaded_for_its_new_version(served, tiny_model_cache, tmp_path):
    path = tmp_path / "sampler_weights" / "latest"
    save_random_adapter(tiny_model_cache / TINY_MODEL, path, seed=1)
    prompt = prompt_of(served.tokenizer)
    adapter = {"model_name": "bt://loops:run/sampler_weights/latest", "uri": path.as_uri() + "/", "version": "v1"}
    first = only(served(sample("v1", prompt, [adapter], max_tokens=1, prompt_logprobs=0))["v1"])
    shutil.rmtree(path)
    save_random_adapter(tiny_model_cache / TINY_MODEL, path, seed=2)
    second = only(served(sample("v2", prompt, [adapter | {"version": "v2"}], max_tokens=1, prompt_logprobs=0))["v2"])
    merged = raw_logprobs(prompt, [adapter])  # the files now at the path
    assert second["prompt_logprobs"][1:] == pytest.approx([merged[j - 1, prompt[j]].item() for j in range(1, len(prompt))], abs=TOLERANCE)
    assert second["prompt_logprobs"][1:] != pytest.approx(first["prompt_logprobs"][1:], abs=TOLERANCE)


def test_a_request_without_max_tokens_stops_at_the_jobs_setting(tiny_model, tmp_path):
    with serve(FakeRelay()) as relay:
        relay.push(sample("unset", [1, 2, 3], max_tokens=None, n=2), chat("chat-unset", max_tokens=None))
        assert run_sampler(tmp_path, relay, max_unset_tokens=3) == (0, {"status": "complete", "error": None})
    sequences = relay.last("unset")["sampled"]["sequences"]
    assert all(len(s["tokens"]) <= 3 for s in sequences) and "length" in {s["finish_reason"] for s in sequences}
    assert relay.last("chat-unset")["done"]["usage"]["completion_tokens"] <= 3


def test_requests_that_cannot_be_served_fail_with_a_sentence(served):
    prompt = prompt_of(served.tokenizer)
    endings = served(
        sample("outside", [1, 10**6]),
        sample("stop-outside", prompt, stop_token_ids=[10**6]),
        sample("long", [1] * 100_000),
        sample("fine", prompt, max_tokens=2),
    )
    assert endings["outside"]["error"].startswith("Token id 1000000 is outside the model's vocabulary")
    assert "tokenize with the base model's tokenizer" in endings["outside"]["error"]
    assert endings["stop-outside"]["error"].startswith("Token id 1000000")
    assert "leaves no room in the model's" in endings["long"]["error"]
    assert len(only(endings["fine"])["sequences"][0]["tokens"]) == 2


def test_a_token_request_through_the_relay_is_answered_by_one_chunk_the_contract_accepts(tiny_model, tmp_path):
    model, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": []}, None, "cpu")
    prompt = prompt_of(tokenizer)
    with serve(FakeRelay()) as relay:
        relay.push(sample("t1", prompt, n=2, temperature=1.0, seed=1, prompt_logprobs=2), chat("c1", max_tokens=4))
        relay.push({"kind": "tokens", "id": "bad", "model": {"base_model": TINY_MODEL, "adapters": []}, "sample": {"prompt_tokens": []}})
        assert run_sampler(tmp_path, relay) == (0, {"status": "complete", "error": None})
    (chunk,) = relay.chunks["t1"]
    schema = json.loads((contract_dir() / "relay-chunk.schema.json").read_text())
    assert not list(Draft202012Validator(schema).iter_errors(chunk))
    assert chunk["seq"] == 0 and chunk["deltas"] == [] and chunk["error"] is None
    sequences = chunk["sampled"]["sequences"]
    assert len(sequences) == 2 and all(1 <= len(s["tokens"]) == len(s["logprobs"]) <= 8 for s in sequences)
    assert len(chunk["sampled"]["topk_prompt_logprobs"][1]) == 2
    assert relay.last("c1")["done"] is not None and "sampled" not in relay.last("c1")
    (bad,) = relay.chunks["bad"]
    assert bad["error"].startswith("The request is invalid at sample")
