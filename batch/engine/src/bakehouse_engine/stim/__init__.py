"""Stim jobs: a target's generators produce questions, and each becomes a stimulus line.

Line shape (bread-api.md §9): the question is appended as a final user turn to the teacher
prompt's messages (`unconditioned_stimulus`) and to the student prompt's messages
(`conditioned_stimulus`); `trajectory_override_stimulus` repeats the conditioned one when the
generator has `rollout_with_conditioned`. Lines come in generator order; `stimulus_id` is the
0-based line index; progress is lines / Σ numq.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

from bakehouse_engine.context import JobContext
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.stim import from_dataset, hardcoded, llm_questions, persona
from bakehouse_engine.stim.request import GeneratorRequest, resolve_numq

GENERATORS: dict[str, Callable[[GeneratorRequest], Iterator[str]]] = {
    "hardcoded": hardcoded.generate,
    "oneshot_qs": llm_questions.generate,
    "custom": llm_questions.generate,
    "persona": persona.generate,
    "from_dataset": from_dataset.generate,
}


def run(ctx: JobContext) -> dict:
    stim = ctx.spec["stim"]
    teacher, student = stim["teacher_prompt"]["messages"], stim["student_prompt"]["messages"]
    prompt_u = prompt_text(teacher)
    requests = [
        GeneratorRequest(index, config, resolve_numq(config, index), prompt_u, stim["templates_uri"], stim.get("datasets", {}))
        for index, config in enumerate(stim["generators"])
    ]
    total = sum(request.numq for request in requests)
    for request in requests:
        produced = 0
        for question in GENERATORS[request.config["type"]](request):
            ctx.output.append(stimulus_line(ctx.output.count, question, teacher, student, request.config))
            ctx.progress.update(100.0 * ctx.output.count / total, ctx.output.count)
            produced += 1
        if produced < request.numq:
            raise JobFailure(f"{request.label} produced {produced} of its {request.numq} questions.")
    return {"lines": ctx.output.count}


def stimulus_line(stimulus_id: int, question: str, teacher: list[dict], student: list[dict], generator: dict) -> dict:
    user_turn = {"role": "user", "content": question}
    line = {
        "stimulus_id": stimulus_id,
        "unconditioned_stimulus": {"messages": copy.deepcopy(teacher) + [dict(user_turn)]},
        "conditioned_stimulus": {"messages": copy.deepcopy(student) + [dict(user_turn)]},
    }
    if generator.get("rollout_with_conditioned"):
        line["trajectory_override_stimulus"] = copy.deepcopy(line["conditioned_stimulus"])
    return line


def prompt_text(messages: list[dict]) -> str:
    """The prompt as text for `${prompt_u}`: a lone message's content, else role-labelled turns."""
    texts = [(message.get("role", ""), content_text(message.get("content"))) for message in messages]
    texts = [(role, text) for role, text in texts if text]
    if len(texts) == 1:
        return texts[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in texts)


def content_text(content: object) -> str:
    """The text of a message's content: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(content_text(part) for part in content)
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    return str(content)
