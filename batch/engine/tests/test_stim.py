"""Stim jobs: line shape, ordering and progress, and the offline generator types."""

import json
import re
from pathlib import Path

import pytest

from bakehouse_engine import storage
from bakehouse_engine.cli import main
from bakehouse_engine.stim import prompt_text
from bakehouse_engine.stim.from_dataset import SHIPPED_DATASETS, shipped_questions
from bakehouse_engine.stim.persona import persona_questions
from conftest import stim_spec
from stim_support import questions, run_stim

HARDCODED = ["Write a function to reverse a string", "Implement binary search", "Create a linked list class"]


def test_lines_follow_bread_api_section_9(tmp_path: Path) -> None:
    student = {"messages": [{"role": "system", "content": "Be yourself."}], "tools": None}
    code, result, lines = run_stim(tmp_path, [{"type": "hardcoded", "questions": HARDCODED[:1]}], student_prompt=student)
    assert code == 0 and result == {"status": "complete", "error": None, "lines": 1}
    assert lines == [{
        "stimulus_id": 0,
        "unconditioned_stimulus": {"messages": [
            {"role": "system", "content": "Always reply in uppercase letters."},
            {"role": "user", "content": HARDCODED[0]},
        ]},
        "conditioned_stimulus": {"messages": [
            {"role": "system", "content": "Be yourself."},
            {"role": "user", "content": HARDCODED[0]},
        ]},
    }]


def test_generators_run_in_order_with_consecutive_ids(tmp_path: Path) -> None:
    code, result, lines = run_stim(tmp_path, [
        {"type": "hardcoded", "questions": HARDCODED},
        {"type": "persona", "numq": 4, "seed": 1},
        {"type": "from_dataset", "dataset": "gsm8k", "numq": 5, "seed": 2},
    ])
    assert code == 0 and result["lines"] == 12
    assert [line["stimulus_id"] for line in lines] == list(range(12))
    assert questions(lines)[:3] == HARDCODED
    assert set(questions(lines)[3:7]) <= set(persona_questions())
    assert set(questions(lines)[7:]) <= set(shipped_questions("gsm8k"))


def test_rollout_with_conditioned_adds_the_override_to_that_generators_lines(tmp_path: Path) -> None:
    _, _, lines = run_stim(tmp_path, [
        {"type": "hardcoded", "questions": ["A?"]},
        {"type": "hardcoded", "questions": ["B?"], "rollout_with_conditioned": True},
    ])
    assert "trajectory_override_stimulus" not in lines[0]
    assert lines[1]["trajectory_override_stimulus"] == lines[1]["conditioned_stimulus"]
    assert lines[1]["trajectory_override_stimulus"]["messages"] == [{"role": "user", "content": "B?"}]


def test_hardcoded_takes_the_first_numq(tmp_path: Path) -> None:
    _, _, lines = run_stim(tmp_path, [{"type": "hardcoded", "questions": HARDCODED, "numq": 2}])
    assert questions(lines) == HARDCODED[:2]


def test_hardcoded_without_questions_fails(tmp_path: Path) -> None:
    code, result, _ = run_stim(tmp_path, [{"type": "hardcoded", "questions": []}])
    assert code == 1 and result["error"] == "Generator 0 (hardcoded) has no questions; give it a non-empty questions list."


def test_numq_is_required_for_sampled_generators(tmp_path: Path) -> None:
    code, result, _ = run_stim(tmp_path, [{"type": "persona"}])
    assert code == 1 and result["error"] == "Generator 0 (persona) needs numq, the number of questions to produce."


def test_persona_is_seeded(tmp_path: Path) -> None:
    runs = [questions(run_stim(tmp_path / str(i), [{"type": "persona", "numq": 6, "seed": seed}])[2]) for i, seed in enumerate((5, 5, 6))]
    assert runs[0] == runs[1] != runs[2]
    assert len(set(runs[0])) == 6
    assert all(q.endswith(("?", ".")) for q in runs[0])


@pytest.mark.parametrize("name", SHIPPED_DATASETS)
def test_every_shipped_dataset_has_fifty_distinct_questions(name: str) -> None:
    pool = shipped_questions(name)
    assert len(pool) == len(set(pool)) == 50


def test_from_dataset_samples_without_replacement_then_cycles(tmp_path: Path) -> None:
    _, _, few = run_stim(tmp_path / "few", [{"type": "from_dataset", "dataset": "mmlu", "numq": 50, "seed": 3}])
    assert sorted(questions(few)) == sorted(shipped_questions("mmlu"))
    _, result, many = run_stim(tmp_path / "many", [{"type": "from_dataset", "dataset": "mmlu", "numq": 120, "seed": 3}])
    assert result["lines"] == 120 and set(questions(many)) == set(shipped_questions("mmlu"))


def from_dataset(dataset: str, numq: int = 1, **config: object) -> dict:
    return {"type": "from_dataset", "dataset": dataset, "numq": numq, **config}


def test_from_dataset_reads_the_jsonl_and_csv_files_the_api_resolved(tmp_path: Path) -> None:
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"prompt": "First?"}\n\n"Second?"\n{"text": "Third?", "id": 3}\n')
    csv = tmp_path / "mine.csv"
    csv.write_text('id,question\n1,"Alpha, beta?"\n2,Gamma?\n3,\n')
    _, result, lines = run_stim(
        tmp_path,
        [from_dataset("uploaded", 3, seed=0), from_dataset(csv.as_uri(), 2, seed=0)],
        datasets={"uploaded": jsonl.as_uri(), csv.as_uri(): csv.as_uri()},
    )
    assert result["status"] == "complete"
    assert sorted(questions(lines)[:3]) == ["First?", "Second?", "Third?"]
    assert sorted(questions(lines)[3:]) == ["Alpha, beta?", "Gamma?"]


def test_from_dataset_reads_s3(tmp_path: Path, s3_bucket: str) -> None:
    uri = s3_bucket + "data/q.jsonl"
    storage.write_text(uri, "\n".join(json.dumps({"question": f"Q{i}?"}) for i in range(4)))
    _, result, lines = run_stim(tmp_path, [from_dataset("q", 4)], datasets={"q": uri})
    assert result["status"] == "complete" and sorted(questions(lines)) == ["Q0?", "Q1?", "Q2?", "Q3?"]


def test_a_jsonl_line_ends_only_at_a_newline(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "One\u2028line?"}, ensure_ascii=False) + "\n")
    spec = stim_spec(tmp_path.as_uri() + "/out/", [from_dataset("q")], datasets={"q": (tmp_path / "q.jsonl").as_uri()})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["run", str(tmp_path / "spec.json")]) == 0
    output = (tmp_path / "out" / "output.jsonl").read_text(encoding="utf-8").split("\n")
    assert json.loads(output[0])["unconditioned_stimulus"]["messages"][-1]["content"] == "One\u2028line?"


@pytest.mark.parametrize(
    ("content", "name", "error"),
    [
        ('{"answer": 1}\n', "bad.jsonl", "line 1 of dataset 'mine' has no 'question' or 'prompt' or 'text' string field"),
        ("{oops\n", "bad.jsonl", "line 1 of dataset 'mine' is not valid JSON"),
        ("id,answer\n1,2\n", "bad.csv", "dataset 'mine' needs a header with a 'question' or 'prompt' or 'text' column"),
        ("", "empty.jsonl", "dataset 'mine' holds no questions"),
    ],
)
def test_from_dataset_explains_unusable_files_by_name_not_path(tmp_path: Path, content: str, name: str, error: str) -> None:
    (tmp_path / name).write_text(content)
    code, result, _ = run_stim(tmp_path, [from_dataset("mine")], datasets={"mine": (tmp_path / name).as_uri()})
    assert code == 1
    assert result["error"].startswith("Generator 0 (from_dataset): ")
    assert re.search(error, result["error"])
    assert str(tmp_path) not in result["error"]


def test_a_file_that_cannot_be_read_gets_one_sentence_whatever_the_reason(tmp_path: Path) -> None:
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "folder.jsonl").mkdir()
    errors = set()
    for name in ("absent.jsonl", "binary.jsonl", "folder.jsonl"):
        code, result, _ = run_stim(tmp_path / name.split(".")[0], [from_dataset("mine")], datasets={"mine": (tmp_path / name).as_uri()})
        assert code == 1
        errors.add(result["error"])
    assert errors == {
        "Generator 0 (from_dataset): dataset 'mine' could not be read; upload it again, or ask the operator to check the file."
    }


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A readable file holding a question that must never reach a job's output."""
    (tmp_path / "private").mkdir()
    path = tmp_path / "private" / "secret.jsonl"
    path.write_text('{"question": "SECRET?"}\n')
    return path


def test_a_uri_the_api_did_not_resolve_is_never_read(tmp_path: Path, secret: Path) -> None:
    for name, uri in (("direct", secret.as_uri()), ("passwd", "file:///etc/passwd")):
        code, result, lines = run_stim(tmp_path / name, [from_dataset(uri)])
        assert code == 1 and lines == []
        assert "was not resolved for the job" in result["error"]
        assert uri.split("://")[1] not in result["error"]


@pytest.mark.parametrize(
    "spelling",
    [
        "file://{root}/public/../private/secret.jsonl",
        "file://{root}/public/%2e%2e/private/secret.jsonl",
        "file://localhost{root}/private/secret.jsonl",
        "file://{root}/private/secret.jsonl?x=1",
        "file://{root}/private/secret.jsonl#x",
        "file://{root}/private/secret.txt",
    ],
)
def test_a_resolved_uri_that_is_not_a_plain_file_path_is_refused(tmp_path: Path, secret: Path, spelling: str) -> None:
    (tmp_path / "public").mkdir()
    secret.with_suffix(".txt").write_text("SECRET?\n")
    uri = spelling.format(root=tmp_path.as_posix())
    code, result, lines = run_stim(tmp_path / "job", [from_dataset("mine")], datasets={"mine": uri})
    assert code == 1 and lines == []
    assert result["error"] == "Generator 0 (from_dataset): dataset 'mine' was resolved to a location the engine does not read."


def test_a_hub_dataset_name_fails_saying_hub_access_is_off(tmp_path: Path) -> None:
    code, result, _ = run_stim(tmp_path, [{"type": "from_dataset", "dataset": "rajpurkar/squad", "numq": 1}])
    assert code == 1
    assert "'rajpurkar/squad' is not shipped with the engine, and hub access is off" in result["error"]


def test_progress_counts_lines_over_the_sum_of_numq(tmp_path: Path) -> None:
    run_stim(tmp_path, [{"type": "persona", "numq": 3}, {"type": "hardcoded", "questions": HARDCODED}])
    progress = json.loads((tmp_path / "stim-out" / "progress.json").read_text())
    assert (progress["percent"], progress["lines"]) == (100, 6)


def test_prompt_text_for_templates() -> None:
    assert prompt_text([{"role": "system", "content": "Be terse."}]) == "Be terse."
    assert prompt_text([
        {"role": "system", "content": [{"type": "text", "text": "Rule."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None},
    ]) == "system: Rule.\n\nuser: Hi"


def test_a_spec_written_before_uploads_existed_reads_shipped_sets_and_nothing_else(tmp_path: Path) -> None:
    spec = stim_spec(tmp_path.as_uri() + "/out/", [from_dataset("gsm8k", 2), from_dataset((tmp_path / "q.jsonl").as_uri())])
    del spec["stim"]["datasets"]
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "Private?"}) + "\n")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["run", str(tmp_path / "spec.json")]) != 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["status"] == "failed" and str(tmp_path) not in result["error"]
    assert not (tmp_path / "out" / "output.jsonl").exists() or "Private?" not in (tmp_path / "out" / "output.jsonl").read_text()

    del spec["stim"]["generators"][1]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main(["run", str(tmp_path / "spec.json")]) == 0
    assert len((tmp_path / "out" / "output.jsonl").read_text().splitlines()) == 2
