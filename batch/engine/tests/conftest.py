"""Shared fixtures: output prefixes on local files and on a mocked S3, and a clean environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bakehouse_engine import storage

LLM_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def no_llm_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a real LLM: each sets the keys it needs, pointing at a local fake."""
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on moto's in-process S3; yields its s3:// prefix."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    storage.reset_clients()
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="bakehouse-test")
        yield "s3://bakehouse-test/"
    storage.reset_clients()


@pytest.fixture(params=["file", "s3"])
def prefix(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A job output prefix, once on local files and once on S3."""
    if request.param == "file":
        return tmp_path.as_uri() + "/jobs/1/"
    return request.getfixturevalue("s3_bucket") + "jobs/1/"


def read_lines(prefix: str) -> list[dict]:
    text = storage.read_text(storage.join(prefix, "output.jsonl"))
    return [json.loads(line) for line in text.splitlines()]


def stim_spec(output_uri: str, generators: list[dict], **stim: object) -> dict:
    return {
        "version": 1,
        "job_id": 7,
        "output_uri": output_uri,
        "kind": "stim",
        "stim": {
            "generators": generators,
            "teacher_prompt": {"messages": [{"role": "system", "content": "Always reply in uppercase letters."}], "tools": None},
            "student_prompt": {"messages": [], "tools": None},
            "templates_uri": None,
            "datasets": {},
            **stim,
        },
    }
