"""`from_dataset`: questions sampled from a shipped question set or a JSONL/CSV file by URI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources

from bakehouse_engine import storage
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.stim.request import GeneratorRequest
from bakehouse_engine.stim.sampling import sample

SHIPPED_DATASETS = ("squad", "gsm8k", "mmlu", "hellaswag", "code_contests", "math_problems")
QUESTION_FIELDS = ("question", "prompt", "text")


def generate(request: GeneratorRequest) -> Iterator[str]:
    yield from sample(load_questions(request.config.get("dataset") or "", request.label), request.numq, request.seed)


def load_questions(dataset: str, label: str) -> tuple[str, ...]:
    if dataset in SHIPPED_DATASETS:
        return shipped_questions(dataset)
    if dataset.startswith(("file://", "s3://")):
        questions = _parse(storage.read_text(dataset), dataset, label)
        if not questions:
            raise JobFailure(f"{label}: the dataset {dataset} holds no questions.")
        return questions
    raise JobFailure(
        f"{label}: dataset '{dataset}' is not shipped with the engine, and hub access is off, so it cannot be "
        f"downloaded; use one of {', '.join(SHIPPED_DATASETS)}, or a file:// or s3:// JSONL or CSV URI."
    )


@cache
def shipped_questions(name: str) -> tuple[str, ...]:
    text = (resources.files("bakehouse_engine") / "datasets" / f"{name}.jsonl").read_text(encoding="utf-8")
    return _parse_jsonl(text, name, name)


def _parse(text: str, uri: str, label: str) -> tuple[str, ...]:
    path = uri.split("?", 1)[0].lower()
    if path.endswith(".csv"):
        return _parse_csv(text, uri, label)
    if path.endswith(".jsonl"):
        return _parse_jsonl(text, uri, label)
    raise JobFailure(f"{label}: the dataset {uri} must be a .jsonl or .csv file.")


def _parse_jsonl(text: str, uri: str, label: str) -> tuple[str, ...]:
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise JobFailure(f"{label}: line {number} of {uri} is not valid JSON ({error}).") from error
        question = record if isinstance(record, str) else _question_field(record, f"line {number} of {uri}", label)
        questions.append(question)
    return tuple(questions)


def _parse_csv(text: str, uri: str, label: str) -> tuple[str, ...]:
    reader = csv.DictReader(io.StringIO(text))
    field = next((name for name in QUESTION_FIELDS if name in (reader.fieldnames or [])), None)
    if field is None:
        raise JobFailure(f"{label}: {uri} needs a header with a {_field_names()} column.")
    return tuple(row[field].strip() for row in reader if (row.get(field) or "").strip())


def _question_field(record: object, where: str, label: str) -> str:
    if isinstance(record, dict):
        for name in QUESTION_FIELDS:
            if isinstance(record.get(name), str) and record[name].strip():
                return record[name].strip()
    raise JobFailure(f"{label}: {where} has no {_field_names()} string field.")


def _field_names() -> str:
    return " or ".join(f"'{name}'" for name in QUESTION_FIELDS)
