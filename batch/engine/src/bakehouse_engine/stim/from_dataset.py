"""`from_dataset`: questions sampled from a shipped question set or a JSONL/CSV file the API resolved.

The engine reads only what the job spec allows: a shipped name, or a dataset listed in the spec's
`stim.datasets` (a user's upload, or a URI under a prefix the operator allows), each a plain
file:/// or s3:// path. Messages name the dataset as the target wrote it, never the URI behind it,
and a file that cannot be read gets the same sentence whatever the reason, so a job's error
tells nothing about the server's files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from urllib.parse import unquote, urlparse

from bakehouse_engine import storage
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.stim.request import GeneratorRequest
from bakehouse_engine.stim.sampling import sample

SHIPPED_DATASETS = ("squad", "gsm8k", "mmlu", "hellaswag", "code_contests", "math_problems")
QUESTION_FIELDS = ("question", "prompt", "text")


def generate(request: GeneratorRequest) -> Iterator[str]:
    dataset = request.config.get("dataset") or ""
    yield from sample(load_questions(dataset, request.label, request.datasets), request.numq, request.seed)


def load_questions(dataset: str, label: str, resolved: Mapping[str, str]) -> tuple[str, ...]:
    if dataset in SHIPPED_DATASETS:
        return shipped_questions(dataset)
    uri = resolved.get(dataset)
    if uri is None:
        raise JobFailure(_not_given(dataset, label))
    if not _plain_file_uri(uri):
        raise JobFailure(f"{label}: dataset '{dataset}' was resolved to a location the engine does not read.")
    try:
        text = storage.read_text(uri)
    except Exception as error:  # missing, unreadable or not UTF-8: one answer, so nothing is revealed
        raise JobFailure(
            f"{label}: dataset '{dataset}' could not be read; upload it again, or ask the operator to check the file."
        ) from error
    questions = _parse(text, uri, f"dataset '{dataset}'", label)
    if not questions:
        raise JobFailure(f"{label}: dataset '{dataset}' holds no questions.")
    return questions


def _not_given(dataset: str, label: str) -> str:
    if "://" in dataset:
        return (
            f"{label}: this dataset URI was not resolved for the job, so the engine does not read it; use a shipped "
            "dataset, one uploaded with PUT /v1/datasets/{name}, or a URI under a prefix the operator allows."
        )
    return (
        f"{label}: dataset '{dataset}' is not shipped with the engine, and hub access is off, so it cannot be "
        f"downloaded; use one of {', '.join(SHIPPED_DATASETS)}, or a dataset uploaded with PUT /v1/datasets/{{name}}."
    )


def _plain_file_uri(uri: str) -> bool:
    """file:/// or s3:// to a .jsonl or .csv file, with no query, host (file) or `.`/`..` segment."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", "s3") or parsed.query or parsed.fragment or parsed.params:
        return False
    if (parsed.scheme == "file") == bool(parsed.netloc):
        return False
    segments = unquote(parsed.path).split("/")[1:]
    if any(segment in ("", ".", "..") or "\\" in segment for segment in segments):
        return False
    return segments[-1].lower().endswith((".jsonl", ".csv"))


@cache
def shipped_questions(name: str) -> tuple[str, ...]:
    text = (resources.files("bakehouse_engine") / "datasets" / f"{name}.jsonl").read_text(encoding="utf-8")
    return _parse_jsonl(text, name, name)


def _parse(text: str, uri: str, name: str, label: str) -> tuple[str, ...]:
    if uri.lower().endswith(".csv"):
        return _parse_csv(text, name, label)
    return _parse_jsonl(text, name, label)


def _parse_jsonl(text: str, name: str, label: str) -> tuple[str, ...]:
    questions = []
    # JSONL lines end at "\n" only: splitlines() would also cut inside a string holding U+2028.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise JobFailure(f"{label}: line {number} of {name} is not valid JSON ({error}).") from error
        question = record if isinstance(record, str) else _question_field(record, f"line {number} of {name}", label)
        questions.append(question)
    return tuple(questions)


def _parse_csv(text: str, name: str, label: str) -> tuple[str, ...]:
    reader = csv.DictReader(io.StringIO(text))
    field = next((column for column in QUESTION_FIELDS if column in (reader.fieldnames or [])), None)
    if field is None:
        raise JobFailure(f"{label}: {name} needs a header with a {_field_names()} column.")
    return tuple(row[field].strip() for row in reader if (row.get(field) or "").strip())


def _question_field(record: object, where: str, label: str) -> str:
    if isinstance(record, dict):
        for name in QUESTION_FIELDS:
            if isinstance(record.get(name), str) and record[name].strip():
                return record[name].strip()
    raise JobFailure(f"{label}: {where} has no {_field_names()} string field.")


def _field_names() -> str:
    return " or ".join(f"'{name}'" for name in QUESTION_FIELDS)
