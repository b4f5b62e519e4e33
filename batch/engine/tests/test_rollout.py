"""Rollout jobs on the tiny model: batched generation, line shape, seeding and settings."""

import json

import pytest

from bakehouse_engine import rollout
from bakehouse_engine.decoding import parse_tool_calls
from bakehouse_engine.rollout import GenerationSettings, teacher_stimulus
from job_harness import close, job_context, read_jsonl, rollout_spec, stim_line, tiny_model, tiny_model_cache  # noqa: F401
from tiny_llm import build_tokenizer

QUESTIONS = ["Tell me about the sea.", "How do I bake bread?", "What is the capital of France?"]


def stim_lines() -> list[dict]:
    return [stim_line(index, question, "You are a pirate.") for index, question in enumerate(QUESTIONS)]


def run_rollout(tmp_path, model, **settings) -> tuple[dict, list[dict]]:
    spec = rollout_spec(tmp_path, model, stim_lines(), **settings)
    ctx = job_context(spec, tmp_path)
    result = rollout.run(ctx)
    close(ctx)
    return result, read_jsonl(tmp_path / "out" / "output.jsonl")


def test_every_stimulus_gets_its_trajectories_in_bread_line_shape(tiny_model, tmp_path):
    result, lines = run_rollout(tmp_path, tiny_model, num_traj_per_stimulus=2, max_concurrency=4, max_tokens=8)
    assert result == {"lines": 6, "unhonoured_config": []}
    assert sorted((line["stimulus_id"], line["trajectory_id"]) for line in lines) == [
        (s, t) for s in range(3) for t in range(2)
    ]
    for line in lines:
        assert set(line) >= {
            "stimulus_id", "trajectory_id", "stimulus", "unconditioned_stimulus", "conditioned_stimulus",
            "response", "finish_reason", "model", "temperature", "tokens",
        }
        assert line["stimulus"] == QUESTIONS[line["stimulus_id"]]
        assert line["model"] == tiny_model and line["temperature"] == 1.0
        assert line["finish_reason"] in ("stop", "length")
        assert 1 <= line["tokens"] <= 8
        assert line["finish_reason"] == "stop" or line["tokens"] == 8
    progress = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert progress["percent"] == 100 and progress["lines"] == 6
    assert (tmp_path / "out" / "output.idx").stat().st_size == 6 * 8


def test_greedy_decoding_is_deterministic(tiny_model, tmp_path):
    _, first = run_rollout(tmp_path / "a", tiny_model, temperature=0)
    _, second = run_rollout(tmp_path / "b", tiny_model, temperature=0)
    assert first == second
    by_stimulus = {}
    for line in first:
        by_stimulus.setdefault(line["stimulus_id"], set()).add(line["response"])
    assert all(len(responses) == 1 for responses in by_stimulus.values())  # greedy: one answer per stimulus


def by_ids(lines: list[dict]) -> dict:
    return {(line["stimulus_id"], line["trajectory_id"]): line["response"] for line in lines}


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_batching_does_not_change_any_trajectory(tiny_model, tmp_path, temperature):
    _, batched = run_rollout(tmp_path / "batched", tiny_model, temperature=temperature, max_concurrency=6)
    _, single = run_rollout(tmp_path / "single", tiny_model, temperature=temperature, max_concurrency=1)
    assert by_ids(batched) == by_ids(single)


def test_the_seed_decides_the_samples(tiny_model, tmp_path):
    _, seven = run_rollout(tmp_path / "a", tiny_model, seed=7, max_tokens=12)
    _, again = run_rollout(tmp_path / "b", tiny_model, seed=7, max_tokens=12)
    _, other = run_rollout(tmp_path / "c", tiny_model, seed=8, max_tokens=12)
    assert by_ids(seven) == by_ids(again)
    assert by_ids(seven) != by_ids(other)
    responses = by_ids(seven)
    assert any(responses[(s, 0)] != responses[(s, 1)] for s in range(3))  # trajectories differ from each other


def test_the_override_stimulus_is_what_the_teacher_sees():
    line = stim_line(0, "Hi", "You are a pirate.", student_system="Be brief.", override=True)
    assert teacher_stimulus(line)["messages"][0]["content"] == "Be brief."
    del line["trajectory_override_stimulus"]
    assert teacher_stimulus(line)["messages"][0]["content"] == "You are a pirate."


def test_extra_kwargs_map_to_generation_or_are_reported():
    settings = GenerationSettings.from_spec(
        {
            "temperature": 0.7,
            "max_tokens": None,
            "extra_kwargs": {
                "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.1, "min_tokens": 2, "stop": "END",
                "chat_template_kwargs": {"enable_thinking": False}, "frequency_penalty": 0.5, "seed": 3,
            },
        }
    )
    assert settings.sampler == {"top_p": 0.9, "top_k": 20}
    assert settings.generate == {"repetition_penalty": 1.1, "min_new_tokens": 2}
    assert settings.stop == ["END"] and settings.template_kwargs == {"enable_thinking": False}
    assert [note.split(":")[0] for note in settings.unhonoured] == ["extra_kwargs.frequency_penalty", "extra_kwargs.seed"]


def test_sampler_settings_and_repetition_penalty_run_end_to_end(tiny_model, tmp_path):
    extra = {"top_p": 0.8, "top_k": 5, "min_p": 0.01, "repetition_penalty": 1.3, "logit_bias": {}}
    result, lines = run_rollout(tmp_path, tiny_model, extra_kwargs=extra)
    assert len(lines) == 6
    assert result["unhonoured_config"] == ["extra_kwargs.logit_bias: not supported by the engine's generator; ignored"]


def test_stop_strings_end_the_response_before_them(tiny_model, tmp_path):
    _, free = run_rollout(tmp_path / "free", tiny_model, temperature=0, max_tokens=12)
    text = free[0]["response"]
    stop = text[3:5]
    _, cut = run_rollout(tmp_path / "cut", tiny_model, temperature=0, max_tokens=12, extra_kwargs={"stop": [stop]})
    cut_line = next(line for line in cut if line["stimulus_id"] == free[0]["stimulus_id"])
    assert cut_line["response"] == text[: text.index(stop)]
    assert cut_line["finish_reason"] == "stop"
    # The recorded tokens are those that spell the cut response; a stop string that starts inside a
    # token leaves none that do, and the line then carries no ids (the bake tokenises the text).
    tokenizer, free_ids = build_tokenizer(), free[0]["response_token_ids"]
    spellings = [free_ids[:k] for k in range(len(free_ids) + 1) if tokenizer.decode(free_ids[:k]) == cut_line["response"]]
    assert cut_line.get("response_token_ids") == (spellings[0] if spellings else None)


def test_hermes_tool_calls_become_a_response_message():
    text = 'Let me look.\n<tool_call>\n{"name": "lookup", "arguments": {"q": "sea"}}\n</tool_call>'
    message = parse_tool_calls(text, "call_0_0")
    assert message == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "call_0_0_0", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "sea"}'}}],
    }
    assert parse_tool_calls("no calls here", "c") is None
    assert parse_tool_calls("<tool_call>not json</tool_call>", "c") is None


def test_chat_template_kwargs_reach_the_template_and_travel_with_the_lines(tiny_model, tmp_path):
    kwargs = {"chat_template_kwargs": {"enable_thinking": False}}
    _, lines = run_rollout(tmp_path, tiny_model, temperature=0, extra_kwargs=kwargs)
    assert all(line["chat_template_kwargs"] == {"enable_thinking": False} for line in lines)
    _, plain = run_rollout(tmp_path / "plain", tiny_model, temperature=0)
    assert all("chat_template_kwargs" not in line for line in plain)
    assert by_ids(lines) != by_ids(plain)  # the think block changed the context the model answered
