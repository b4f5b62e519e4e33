import errno
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import bakehouse_engine.stim
from bakehouse_engine import storage
from bakehouse_engine.cli import main
from conftest import read_lines, stim_spec

CONTRACT = Path(__file__).resolve().parents[2] / "contract"


def write_spec(tmp_path: Path, spec: dict) -> str:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return str(path)


def result(prefix: str) -> dict:
    return json.loads(storage.read_text(storage.join(prefix, "result.json")))


def assert_matches_contract(document: dict, schema_file: str) -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator(json.loads((CONTRACT / schema_file).read_text())).validate(document)


def test_a_stim_job_writes_lines_progress_and_result(prefix: str, tmp_path: Path) -> None:
    spec = stim_spec(prefix, [{"type": "hardcoded", "questions": ["One?", "Two?", "Three?"], "numq": 2}])
    assert main(["run", write_spec(tmp_path, spec)]) == 0

    assert result(prefix) == {"status": "complete", "error": None, "lines": 2}
    assert_matches_contract(result(prefix), "job-result.schema.json")
    progress = json.loads(storage.read_text(storage.join(prefix, "progress.json")))
    assert_matches_contract(progress, "job-progress.schema.json")
    assert (progress["percent"], progress["lines"]) == (100, 2)
    assert [line["conditioned_stimulus"]["messages"][-1]["content"] for line in read_lines(prefix)] == ["One?", "Two?"]


def test_a_spec_can_be_read_from_s3(s3_bucket: str, tmp_path: Path) -> None:
    out = s3_bucket + "jobs/9/"
    storage.write_json(s3_bucket + "specs/9.json", stim_spec(out, [{"type": "persona", "numq": 3}]))
    assert main(["run", s3_bucket + "specs/9.json"]) == 0
    assert result(out)["lines"] == 3


def test_a_bad_spec_fails_with_exit_2_and_says_why(tmp_path: Path) -> None:
    prefix = tmp_path.as_uri() + "/out/"
    spec = stim_spec(prefix, [{"type": "hardcoded", "questions": ["Q?"]}])
    spec["version"] = 2
    assert main(["run", write_spec(tmp_path, spec)]) == 2
    assert result(prefix)["status"] == "failed"
    assert "version" in result(prefix)["error"]


def test_a_spec_without_a_usable_output_uri_only_exits_2(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("[]")
    assert main(["run", str(tmp_path / "spec.json")]) == 2


def test_a_job_failure_becomes_the_error_sentence(tmp_path: Path) -> None:
    prefix = tmp_path.as_uri() + "/out/"
    spec = stim_spec(prefix, [{"type": "hardcoded", "questions": ["Q?"], "numq": 5}])
    assert main(["run", write_spec(tmp_path, spec)]) == 1
    assert result(prefix) == {
        "status": "failed",
        "error": "Generator 0 (hardcoded) asks for 5 questions but lists only 1; lower numq or add questions.",
        "lines": 0,
    }


def test_lines_written_before_a_failure_stay_readable(tmp_path: Path) -> None:
    prefix = tmp_path.as_uri() + "/out/"
    spec = stim_spec(prefix, [
        {"type": "hardcoded", "questions": ["A?", "B?"]},
        {"type": "from_dataset", "dataset": "someone/hub-dataset", "numq": 3},
    ])
    assert main(["run", write_spec(tmp_path, spec)]) == 1
    assert "hub access is off" in result(prefix)["error"]
    assert result(prefix)["lines"] == 2
    assert len(read_lines(prefix)) == 2


def test_an_unexpected_error_is_a_sentence_pointing_at_the_log_which_has_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_ctx: object) -> dict:
        raise KeyError("boom")

    monkeypatch.setattr(bakehouse_engine.stim, "run", broken)
    prefix = tmp_path.as_uri() + "/out/"
    assert main(["run", write_spec(tmp_path, stim_spec(prefix, [{"type": "persona", "numq": 1}]))]) == 1
    assert result(prefix)["error"] == (
        "The stim job failed on an unexpected engine error (KeyError); its log has the details. "
        "Run it again, and report the problem if it keeps failing."
    )
    engine_log = storage.read_text(storage.join(prefix, "engine.log"))
    assert "Traceback (most recent call last)" in engine_log
    assert "KeyError: 'boom'" in engine_log


def test_a_traceback_or_a_path_in_an_error_never_reaches_result_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_ctx: object) -> dict:
        raise RuntimeError('Traceback (most recent call last):\n  File "/opt/engine/x.py", line 3\nValueError: file:///srv/jobs/7/spec.json')

    monkeypatch.setattr(bakehouse_engine.stim, "run", broken)
    prefix = tmp_path.as_uri() + "/out/"
    assert main(["run", write_spec(tmp_path, stim_spec(prefix, [{"type": "persona", "numq": 1}]))]) == 1
    error = result(prefix)["error"]
    assert "\n" not in error and "Traceback" not in error and "/" not in error
    assert error.startswith("The stim job failed on an unexpected engine error (RuntimeError)")


@pytest.mark.parametrize(
    ("raised", "sentence"),
    [
        (MemoryError(), "The rollout ran out of memory; lower max_concurrency or max_tokens, or run it on a machine with more memory, then run it again."),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "The rollout ran out of memory; lower max_concurrency or max_tokens, or run it on a machine with more memory, then run it again."),
        (KeyboardInterrupt(), "The rollout was interrupted (SIGINT) before it finished; run it again."),
        (OSError(errno.ENOSPC, "No space left on device", "/srv/data/jobs/7/output.jsonl"), "No space left on disk while writing the rollout's files; free some space, then run the rollout again."),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "The disk quota ran out while writing the rollout's files; free some space or raise the quota, then run the rollout again."),
    ],
)
def test_memory_interrupts_and_full_disks_are_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: BaseException, sentence: str) -> None:
    import bakehouse_engine.cli as cli

    def failing(_ctx: object) -> dict:
        raise raised

    monkeypatch.setattr(cli, "_job_module", lambda _kind: SimpleNamespace(run=failing))
    spec = {**stim_spec(tmp_path.as_uri() + "/out/", [{"type": "persona", "numq": 1}]), "kind": "rollout"}
    monkeypatch.setattr(cli, "load_spec", lambda _source: spec)
    assert main(["run", "unused"]) == 1
    assert result(spec["output_uri"])["error"] == sentence


def test_the_engine_log_is_published_under_the_output_prefix(prefix: str, tmp_path: Path) -> None:
    spec = stim_spec(prefix, [{"type": "hardcoded", "questions": ["Q?"], "numq": 5}])
    assert main(["run", write_spec(tmp_path, spec)]) == 1
    engine_log = storage.read_text(storage.join(prefix, "engine.log"))
    assert "stim job 7 starting" in engine_log
    assert "asks for 5 questions but lists only 1" in engine_log


def test_sigterm_fails_the_job_with_a_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    def stopped(_ctx: object) -> dict:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal handler raises first")

    monkeypatch.setattr(bakehouse_engine.stim, "run", stopped)
    prefix = tmp_path.as_uri() + "/out/"
    assert main(["run", write_spec(tmp_path, stim_spec(prefix, [{"type": "persona", "numq": 1}]))]) == 1
    assert result(prefix)["error"] == "The job was stopped (SIGTERM) before it finished; run it again."


def test_a_job_needing_torch_on_an_install_without_it_says_where_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bakehouse_engine.cli as cli

    def without_torch(name: str) -> object:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli.importlib, "import_module", without_torch)
    prefix = tmp_path.as_uri() + "/out/"
    assert main(["run", write_spec(tmp_path, stim_spec(prefix, [{"type": "persona", "numq": 1}]))]) == 1
    assert result(prefix)["error"] == (
        "This engine install cannot run stim jobs: torch is missing. Run them on the GPU image, "
        "or install the engine with its ml extra."
    )
