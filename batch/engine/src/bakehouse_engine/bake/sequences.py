"""Token sequences for one trajectory: the student and teacher contexts, each followed by the response.

student = chat(conditioned_stimulus) with the generation prompt, then the response;
teacher = chat(unconditioned_stimulus) with the generation prompt, then the same response.

The teacher context and the response are the token ids the rollout recorded
(`teacher_prompt_token_ids`, `response_token_ids`): rendering the unconditioned stimulus again would
lose the teacher prompt's tools, which stim lines do not carry, and decoding then re-tokenising the
response need not give back the tokens the teacher sampled. Rollout lines written before those fields
existed fall back to rendering the teacher context and tokenising the response text on its own. The
student context is rendered from the conditioned stimulus with its tools (the bake fills them in from
the student prompt). The response is appended to each prompt rather than rendered as an assistant turn,
which can retokenise it across the boundary or rewrite it (Qwen3's template moves `<think>` blocks), and
then the teacher's and student's response tokens would no longer be the trajectory. The chat template is
still used for the assistant turn to find its closing token (e.g. `<|im_end|>`): when the rollout
stopped on its own, predicting that token is part of the behaviour (where to stop).

The loss covers the response tokens and that closing token: `count` predictions, made by the logits
at positions `start - 1 … start + count - 2` of each sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bakehouse_engine.models import render_chat


@dataclass
class TrainingExample:
    student_ids: list[int]
    teacher_ids: list[int]
    student_start: int  # index of the first response token in student_ids
    teacher_start: int
    count: int  # response tokens (plus the closing token) the loss covers

    def positions(self, start: int) -> range:
        """The logit positions that predict the response tokens of a sequence whose response starts at `start`."""
        return range(start - 1, start - 1 + self.count)


def encode(tokenizer: Any, text: str) -> list[int]:
    # Chat templates write their own BOS; the tokenizer must not add another.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def closing_token(tokenizer: Any, messages: list[dict], tools: list | None, prompt_text: str, response: str, template_kwargs: dict) -> list[int]:
    """The first token the chat template writes after the assistant's text, else EOS."""
    full = render_chat(
        tokenizer, messages + [{"role": "assistant", "content": response}], tools, False, **template_kwargs
    )
    head = prompt_text + response
    if full.startswith(head) and len(full) > len(head):
        return encode(tokenizer, full[len(head) :])[:1]
    return [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []


def build_example(tokenizer: Any, line: dict, max_length: int) -> TrainingExample | None:
    """The training example for one rollout line, or None when the teacher prompt alone fills max_length."""
    template_kwargs = line.get("chat_template_kwargs") or {}
    student_side, teacher_side = line["conditioned_stimulus"], line["unconditioned_stimulus"]
    student_text = render_chat(tokenizer, student_side["messages"], student_side.get("tools"), True, **template_kwargs)
    student_prompt = encode(tokenizer, student_text)
    teacher_prompt = line.get("teacher_prompt_token_ids")
    if teacher_prompt is None:
        teacher_text = render_chat(tokenizer, teacher_side["messages"], teacher_side.get("tools"), True, **template_kwargs)
        teacher_prompt = encode(tokenizer, teacher_text)
    response = line["response"]
    target = list(line["response_token_ids"]) if line.get("response_token_ids") is not None else encode(tokenizer, response)
    if line.get("finish_reason") != "length":
        target += closing_token(
            tokenizer, student_side["messages"], student_side.get("tools"), student_text, response, template_kwargs
        )
    # Truncation keeps both prompts whole and cuts the shared response, so both sides stay aligned.
    room = max_length - max(len(student_prompt), len(teacher_prompt))
    target = target[: max(room, 0)]
    if not target:
        return None
    return TrainingExample(
        student_ids=student_prompt + target,
        teacher_ids=teacher_prompt + target,
        student_start=len(student_prompt),
        teacher_start=len(teacher_prompt),
        count=len(target),
    )
