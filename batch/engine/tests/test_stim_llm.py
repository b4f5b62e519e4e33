"""`oneshot_qs` and `custom` against a local fake of each wire format."""

import json
from pathlib import Path

import pytest

from bakehouse_engine.stim import question_llm
from bakehouse_engine.stim.llm_questions import parse_questions
from fake_llm import FakeLLM, serve
from stim_support import questions, run_stim


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(question_llm, "RETRY_BASE_DELAY_S", 0.01)


def use(fake: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    if fake.wire == "anthropic":
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url + "/v1")


def test_anthropic_messages_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reply = json.dumps(["What is bread?", "How do ovens work?", "Why does dough rise?"])
    with serve(FakeLLM("anthropic", [(200, reply)])) as fake:
        use(fake, monkeypatch)
        code, result, lines = run_stim(tmp_path, [
            {"type": "oneshot_qs", "model": "claude-sonnet-4-5-20250929", "numq": 3, "temperature": 1.5, "max_tokens": 900}
        ])
    assert code == 0 and result["lines"] == 3
    assert questions(lines) == ["What is bread?", "How do ovens work?", "Why does dough rise?"]
    (request,) = fake.requests
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == "sk-ant-test"
    assert request["headers"]["anthropic-version"] == "2023-06-01"
    body = request["json"]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("claude-sonnet-4-5-20250929", 900, 1.0)
    prompt = body["messages"][0]["content"]
    assert "Always reply in uppercase letters." in prompt and "Write 3 different questions" in prompt


def test_openai_compatible_chat_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reply = "Here are your questions:\n1. What is rye?\n2) Is spelt wheat?\n- Why knead dough?\n"
    with serve(FakeLLM("openai", [(200, reply)])) as fake:
        use(fake, monkeypatch)
        code, _, lines = run_stim(tmp_path, [{"type": "oneshot_qs", "model": "local-model", "numq": 3, "temperature": 0.7}])
    assert code == 0
    assert questions(lines) == ["What is rye?", "Is spelt wheat?", "Why knead dough?"]
    (request,) = fake.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test"
    assert (request["json"]["model"], request["json"]["temperature"]) == ("local-model", 0.7)
    assert request["json"]["messages"][0]["role"] == "user"


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
def test_asks_again_for_the_remainder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wire: str) -> None:
    replies = [(200, '["A?", "B?"]'), (200, '["B?", "C?", "D?", "E?"]')]
    with serve(FakeLLM(wire, replies)) as fake:
        use(fake, monkeypatch)
        code, _, lines = run_stim(tmp_path, [{"type": "oneshot_qs", "numq": 4}])
    assert code == 0 and questions(lines) == ["A?", "B?", "C?", "D?"]
    second_prompt = fake.requests[1]["json"]["messages"][0]["content"]
    assert "Write 2 different questions" in second_prompt and "- A?\n- B?" in second_prompt


def test_fails_when_rounds_run_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(FakeLLM("openai", [(200, '["Only one?"]')] * 10)) as fake:
        use(fake, monkeypatch)
        code, result, lines = run_stim(tmp_path, [{"type": "oneshot_qs", "model": "m", "numq": 3}])
    assert code == 1 and len(fake.requests) == 4
    assert result["error"].startswith("Generator 0 (oneshot_qs): the question LLM (m) wrote only 1 of 3 questions in 4 requests")
    assert questions(lines) == ["Only one?"]


def test_retries_server_errors_then_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(FakeLLM("anthropic", [(529, "Overloaded"), (200, '["Q?"]')])) as fake:
        use(fake, monkeypatch)
        code, _, lines = run_stim(tmp_path, [{"type": "oneshot_qs", "numq": 1}])
    assert code == 0 and questions(lines) == ["Q?"] and len(fake.requests) == 2


def test_a_client_error_fails_with_the_apis_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(FakeLLM("anthropic", [(404, "model: claude-3-5-sonnet-20241022")])) as fake:
        use(fake, monkeypatch)
        code, result, _ = run_stim(tmp_path, [{"type": "oneshot_qs", "model": "claude-3-5-sonnet-20241022", "numq": 1}])
    assert code == 1
    assert result["error"] == (
        f"The question LLM at {fake.url}/v1/messages (model claude-3-5-sonnet-20241022) answered HTTP 404: "
        "model: claude-3-5-sonnet-20241022"
    )


def test_an_unreachable_endpoint_fails_with_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    code, result, _ = run_stim(tmp_path, [{"type": "oneshot_qs", "numq": 1}])
    assert code == 1 and result["error"].startswith("The question LLM at http://127.0.0.1:9/v1/chat/completions could not be reached")


@pytest.mark.parametrize("kind", ["oneshot_qs", "custom"])
def test_without_a_key_the_job_fails_naming_the_settings(tmp_path: Path, kind: str) -> None:
    generator = {"type": kind, "numq": 2, "template_content": "Write ${numq} for ${prompt_u}"}
    code, result, _ = run_stim(tmp_path, [generator])
    assert code == 1
    assert result["error"] == (
        f"Generator 0 ({kind}) writes its questions with an LLM, but none is configured: set ANTHROPIC_API_KEY "
        "(Anthropic Messages API), or OPENAI_API_KEY with OPENAI_BASE_URL (any OpenAI-compatible chat endpoint), "
        "in the engine's environment."
    )


def test_custom_renders_template_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = "Give ${numq} questions that test: ${prompt_u} Prices like $5 stay as they are."
    with serve(FakeLLM("openai", [(200, "Q1?\nQ2?")])) as fake:
        use(fake, monkeypatch)
        code, _, lines = run_stim(tmp_path, [{"type": "custom", "numq": 2, "template_content": template}])
    assert code == 0 and questions(lines) == ["Q1?", "Q2?"]
    assert fake.requests[0]["json"]["messages"][0]["content"] == (
        "Give 2 questions that test: Always reply in uppercase letters. Prices like $5 stay as they are."
    )


def test_template_path_resolves_under_templates_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = tmp_path / "repo"
    (templates / "templates").mkdir(parents=True)
    (templates / "templates" / "qs.txt").write_text("From file: ${numq} / ${prompt_u}")
    with serve(FakeLLM("anthropic", [(200, '["X?"]')])) as fake:
        use(fake, monkeypatch)
        code, _, _ = run_stim(
            tmp_path, [{"type": "custom", "numq": 1, "template_path": "templates/qs.txt"}], templates_uri=templates.as_uri() + "/"
        )
    assert code == 0
    assert fake.requests[0]["json"]["messages"][0]["content"] == "From file: 1 / Always reply in uppercase letters."


def test_a_template_path_without_templates_uri_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    code, result, _ = run_stim(tmp_path, [{"type": "custom", "numq": 1, "template_path": "templates/qs.txt"}])
    assert code == 1
    assert result["error"] == (
        "Generator 0 (custom) names template templates/qs.txt, but the job has no templates_uri to read it from."
    )


def test_a_custom_generator_needs_a_template(tmp_path: Path) -> None:
    code, result, _ = run_stim(tmp_path, [{"type": "custom", "numq": 1}])
    assert code == 1 and result["error"] == "Generator 0 (custom) needs a template: set template_content or template_path."


@pytest.mark.parametrize(
    ("reply", "truncated", "expected"),
    [
        ('["a?", "b?"]', False, ["a?", "b?"]),
        ('```json\n[{"question": "a?"}, {"prompt": "b?"}]\n```', False, ["a?", "b?"]),
        ("Sure! Here they are:\n\n1. a?\n2. b?\n3. c", True, ["a?", "b?"]),
        ('[\n  "a?",\n  "b?",\n  "c', True, ["a?", "b?"]),
        ("Q1: a?\n* b?\n• c?", False, ["a?", "b?", "c?"]),
        ("What does [1, 2] mean?\nIs x[0] first?", False, ["What does [1, 2] mean?", "Is x[0] first?"]),
    ],
)
def test_parse_questions(reply: str, truncated: bool, expected: list[str]) -> None:
    assert parse_questions(reply, truncated) == expected
