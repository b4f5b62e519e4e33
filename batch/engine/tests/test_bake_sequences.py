"""Student and teacher token sequences for a trajectory, and where the response sits in each."""

import pytest

from bakehouse_engine.bake.sequences import build_example, encode
from job_harness import stim_line
from tiny_llm import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def line(response: str = "Arr, the sea is wide.", finish_reason: str = "stop") -> dict:
    base = stim_line(0, "Tell me about the sea.", "You are a pirate.", student_system=None)
    return {**base, "response": response, "finish_reason": finish_reason}


def test_both_sides_end_with_the_same_response_tokens_and_closing_token(tokenizer):
    example = build_example(tokenizer, line(), max_length=500)
    response = encode(tokenizer, "Arr, the sea is wide.")
    student_target = example.student_ids[example.student_start :]
    teacher_target = example.teacher_ids[example.teacher_start :]
    assert student_target == teacher_target == response + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    assert example.count == len(response) + 1
    # The teacher context carries the system prompt; the student's does not.
    assert example.teacher_start > example.student_start
    assert "pirate" in tokenizer.decode(example.teacher_ids[: example.teacher_start])
    assert "pirate" not in tokenizer.decode(example.student_ids[: example.student_start])


def test_loss_positions_are_the_logits_that_predict_the_response(tokenizer):
    example = build_example(tokenizer, line(), max_length=500)
    positions = example.positions(example.student_start)
    assert [example.student_ids[p + 1] for p in positions] == example.student_ids[example.student_start :]


def test_a_truncated_rollout_has_no_closing_token(tokenizer):
    example = build_example(tokenizer, line(finish_reason="length"), max_length=500)
    assert example.count == len(encode(tokenizer, "Arr, the sea is wide."))


def test_max_length_cuts_the_response_on_both_sides_alike(tokenizer):
    full = build_example(tokenizer, line(), max_length=500)
    cut = build_example(tokenizer, line(), max_length=full.teacher_start + 3)
    assert cut.count == 3
    assert len(cut.teacher_ids) == full.teacher_start + 3
    assert cut.student_ids[cut.student_start :] == cut.teacher_ids[cut.teacher_start :]


def test_a_prompt_that_fills_max_length_gives_no_example(tokenizer):
    example = build_example(tokenizer, line(), max_length=500)
    assert build_example(tokenizer, line(), max_length=example.teacher_start) is None


def test_the_rollout_template_switches_apply_to_both_contexts(tokenizer):
    example = build_example(tokenizer, {**line(), "chat_template_kwargs": {"enable_thinking": False}}, max_length=500)
    for ids, start in ((example.student_ids, example.student_start), (example.teacher_ids, example.teacher_start)):
        assert tokenizer.decode(ids[:start]).endswith("<|im_start|>assistant\n<think></think>\n")
