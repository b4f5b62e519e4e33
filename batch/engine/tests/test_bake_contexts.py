"""The bake trains on exactly the token ids the rollout generated from and sampled (issue 15).

Stim lines carry only messages: the teacher prompt's tools reach the rollout through its spec and
the student prompt's tools reach the bake through its spec, so neither context can be rebuilt from the
line alone; and decoding a response then tokenising it again need not give back the sampled tokens.
"""

import pytest

from bakehouse_engine import bake, rollout
from bakehouse_engine.bake import with_student_tools
from bakehouse_engine.bake.sequences import build_example, encode
from bakehouse_engine.models import render_chat
from job_harness import bake_spec, close, job_context, read_jsonl, rollout_lines, rollout_spec, stim_line, tiny_model, tiny_model_cache  # noqa: F401
from tiny_llm import build_tokenizer

TEACHER_TOOLS = [{"type": "function", "function": {"name": "lookup_tide", "parameters": {"type": "object"}}}]
STUDENT_TOOLS = [{"type": "function", "function": {"name": "chart_course", "parameters": {"type": "object"}}}]
QUESTIONS = ["Tell me about the sea.", "How do I bake bread?"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def recorded_rollout(tmp_path, model, monkeypatch, **settings) -> tuple[list[dict], dict, dict]:
    """The rollout's lines, and the prompt ids and completion ids generate() saw, by (stimulus, trajectory)."""
    prompts, completions = {}, {}
    generate = rollout.Generator.generate

    def recording(self, batch):
        results = generate(self, batch)
        for item, (ids, _) in zip(batch, results):
            prompts[item.stimulus_id, item.trajectory_id] = item.prompt_ids
            completions[item.stimulus_id, item.trajectory_id] = ids
        return results

    monkeypatch.setattr(rollout.Generator, "generate", recording)
    lines = [stim_line(index, question, "You are a pirate.") for index, question in enumerate(QUESTIONS)]
    ctx = job_context(rollout_spec(tmp_path, model, lines, **settings), tmp_path)
    rollout.run(ctx)
    close(ctx)
    return read_jsonl(tmp_path / "out" / "output.jsonl"), prompts, completions


def test_a_teacher_prompt_with_tools_is_the_context_the_bake_trains_on(tiny_model, tmp_path, monkeypatch, tokenizer):
    lines, prompts, completions = recorded_rollout(tmp_path, tiny_model, monkeypatch, tools=TEACHER_TOOLS, max_tokens=6)
    for line in with_student_tools(lines, STUDENT_TOOLS):
        key = (line["stimulus_id"], line["trajectory_id"])
        example = build_example(tokenizer, line, max_length=500)
        assert example.teacher_ids[: example.teacher_start] == prompts[key]
        assert "lookup_tide" in tokenizer.decode(example.teacher_ids[: example.teacher_start])
        response = example.teacher_ids[example.teacher_start :][: len(completions[key])]
        assert response == completions[key]
        student_context = tokenizer.decode(example.student_ids[: example.student_start])
        assert "chart_course" in student_context and "lookup_tide" not in student_context
        # Rendering the line's own stimulus, as bakes did before, loses the teacher's tools.
        stale = encode(tokenizer, render_chat(tokenizer, line["unconditioned_stimulus"]["messages"], None, True))
        assert stale != prompts[key]


def test_a_thinking_template_trains_on_the_sampled_tokens_not_the_retokenised_text(tiny_model, tmp_path, monkeypatch, tokenizer):
    thinking = {"chat_template_kwargs": {"enable_thinking": False}}
    lines, prompts, completions = recorded_rollout(tmp_path, tiny_model, monkeypatch, extra_kwargs=thinking, max_tokens=8)
    retokenised_differs = False
    for line in lines:
        key = (line["stimulus_id"], line["trajectory_id"])
        example = build_example(tokenizer, line, max_length=500)
        assert tokenizer.decode(example.teacher_ids[: example.teacher_start]).endswith("<think></think>\n")
        assert example.teacher_ids[: example.teacher_start] == prompts[key]
        assert example.teacher_ids[example.teacher_start :][: len(completions[key])] == completions[key]
        retokenised_differs |= encode(tokenizer, line["response"]) != completions[key]
    assert retokenised_differs  # the tiny model samples token splits that BPE would merge


def test_stored_response_ids_win_over_the_text_where_decode_then_encode_is_not_the_identity(tokenizer):
    text = "<think>sea</think>Arr."
    spelled = [tokenizer.convert_tokens_to_ids(char) for char in text]  # one token per character
    assert encode(tokenizer, text) != spelled and tokenizer.decode(spelled) == text
    line = {**stim_line(0, "Tell me about the sea.", "You are a pirate."), "response": text, "finish_reason": "length"}
    example = build_example(tokenizer, {**line, "response_token_ids": spelled}, max_length=500)
    assert example.teacher_ids[example.teacher_start :] == example.student_ids[example.student_start :] == spelled


def test_an_override_stimulus_still_gives_the_bake_the_unconditioned_teacher_context(tiny_model, tmp_path, tokenizer):
    lines = [stim_line(0, "Tell me about the sea.", "You are a pirate.", override=True)]
    ctx = job_context(rollout_spec(tmp_path, tiny_model, lines, tools=TEACHER_TOOLS, num_traj_per_stimulus=1), tmp_path)
    rollout.run(ctx)
    close(ctx)
    [line] = read_jsonl(tmp_path / "out" / "output.jsonl")
    teacher = encode(tokenizer, render_chat(tokenizer, line["unconditioned_stimulus"]["messages"], TEACHER_TOOLS, True))
    assert line["teacher_prompt_token_ids"] == teacher


def test_an_old_rollout_line_without_token_ids_still_bakes(tiny_model, tmp_path, tokenizer):
    old = rollout_lines(4)
    assert all("teacher_prompt_token_ids" not in line and "response_token_ids" not in line for line in old)
    example = build_example(tokenizer, old[0], max_length=500)
    rendered = encode(tokenizer, render_chat(tokenizer, old[0]["unconditioned_stimulus"]["messages"], None, True))
    assert example.teacher_ids[: example.teacher_start] == rendered
    assert example.teacher_ids[example.teacher_start :][:-1] == encode(tokenizer, old[0]["response"])
    spec = bake_spec(tmp_path, tiny_model, [("main", 1.0, old)], total=4)
    spec["bake"]["datasets"][0]["student_tools"] = STUDENT_TOOLS
    ctx = job_context(spec, tmp_path)
    result = bake.run(ctx)
    close(ctx)
    assert result["checkpoints"]
