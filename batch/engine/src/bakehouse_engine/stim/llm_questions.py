"""`oneshot_qs` and `custom`: a question-writing LLM is shown a template and asked for questions.

The template is Python `string.Template` text with `${numq}` (how many questions to write) and
`${prompt_u}` (the teacher prompt's text). `oneshot_qs` has a built-in template; either type may
bring its own as `template_content` or as `template_path` under the job's `templates_uri`.
When a reply holds fewer questions than asked, the LLM is asked again for the rest.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from importlib import resources
from string import Template

from bakehouse_engine import storage
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.stim.question_llm import question_llm_from_env
from bakehouse_engine.stim.request import GeneratorRequest

DEFAULT_MAX_TOKENS = 4096
DEFAULT_TEMPERATURE = 1.0
# Shown to the LLM on later rounds so it does not repeat itself; bounded to keep prompts small.
MAX_QUESTIONS_SHOWN_AS_TAKEN = 50

_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d+[.):]|[Qq]\d*[.):])\s*")


def generate(request: GeneratorRequest) -> Iterator[str]:
    template = load_template(request)
    config = request.config
    llm = question_llm_from_env(config.get("model"), request.label)
    temperature = config["temperature"] if config.get("temperature") is not None else DEFAULT_TEMPERATURE
    max_tokens = config.get("max_tokens") or DEFAULT_MAX_TOKENS
    seen: set[str] = set()
    taken: list[str] = []
    rounds = max_rounds(request.numq)
    for _ in range(rounds):
        prompt = render(template, request.numq - len(taken), request.prompt_u, taken)
        completion = llm.complete(prompt, temperature, max_tokens)
        for question in parse_questions(completion.text, completion.truncated):
            key = question.casefold()
            if key not in seen and len(taken) < request.numq:
                seen.add(key)
                taken.append(question)
                yield question
        if len(taken) == request.numq:
            return
    raise JobFailure(
        f"{request.label}: the question LLM ({llm.model}) wrote only {len(taken)} of {request.numq} questions "
        f"in {rounds} requests; raise max_tokens, or use a template that asks for one question per line."
    )


def max_rounds(numq: int) -> int:
    """A few rounds for small requests; more for large ones, which outgrow one reply's max_tokens."""
    return 3 + math.ceil(numq / 100)


def load_template(request: GeneratorRequest) -> str:
    config = request.config
    if config.get("template_content"):
        return config["template_content"]
    if path := config.get("template_path"):
        if not request.templates_uri:
            raise JobFailure(f"{request.label} names template {path}, but the job has no templates_uri to read it from.")
        relative = path if path.startswith("templates/") else f"templates/{path.rsplit('/', 1)[-1]}"
        return storage.read_text(storage.join(request.templates_uri, relative))
    if config["type"] == "custom":
        raise JobFailure(f"{request.label} needs a template: set template_content or template_path.")
    return (resources.files(__package__) / "templates" / "oneshot_qs.txt").read_text(encoding="utf-8")


def render(template: str, numq: int, prompt_u: str, taken: list[str]) -> str:
    # safe_substitute: templates may hold other `$` text (code, prices) that is not a placeholder.
    text = Template(template).safe_substitute(numq=str(numq), prompt_u=prompt_u)
    if taken:
        shown = "\n".join(f"- {question}" for question in taken[-MAX_QUESTIONS_SHOWN_AS_TAKEN:])
        text += f"\n\nThese questions are already taken; write {numq} new ones, different from them:\n{shown}\n"
    return text


def parse_questions(text: str, truncated: bool = False) -> list[str]:
    """Questions from an LLM reply: a JSON list (of strings or of objects with a question field),
    possibly inside a code fence, or else one question per line. A reply cut off at max_tokens
    loses its last, possibly partial, line."""
    body = _strip_code_fence(text)
    parsed = _json_list(body)
    if parsed is not None:
        return parsed
    lines = body.splitlines()
    if truncated and lines:
        lines = lines[:-1]
    questions = []
    for line in lines:
        # Also unwraps the items of a JSON list that was cut off and so did not parse.
        question = _BULLET.sub("", line.strip()).strip().strip("[],").strip().strip('"').strip()
        # Skip preambles such as "Here are 10 questions:".
        if question and not question.endswith(":"):
            questions.append(question)
    return questions


def _strip_code_fence(text: str) -> str:
    match = re.search(r"```[a-zA-Z]*\n(.*?)(?:```|$)", text, re.DOTALL)
    return match.group(1) if match else text


def _json_list(text: str) -> list[str] | None:
    start, end = text.find("["), text.rfind("]")
    if start == -1 or end <= start:
        return None
    try:
        items = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list):
        return None
    questions = []
    for item in items:
        if isinstance(item, dict):
            item = next((item[k] for k in ("question", "prompt", "text") if isinstance(item.get(k), str)), None)
        if isinstance(item, str) and item.strip():
            questions.append(item.strip())
    return questions or None
