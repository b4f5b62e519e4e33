from pathlib import Path

import pytest

from bakehouse_engine import storage
from bakehouse_engine.errors import JobFailure


def test_join_keeps_a_trailing_slash_only_when_asked() -> None:
    assert storage.join("s3://b/jobs/1/", "ckpts", "10/") == "s3://b/jobs/1/ckpts/10/"
    assert storage.join("file:///tmp/x", "output.jsonl") == "file:///tmp/x/output.jsonl"
    assert storage.join("file:///tmp/x/", "/a/", "b") == "file:///tmp/x/a/b"


def test_write_then_read_whole_and_ranges(prefix: str) -> None:
    uri = storage.join(prefix, "dir", "data.bin")
    storage.write_bytes(uri, b"0123456789")
    assert storage.read_bytes(uri) == b"0123456789"
    assert storage.read_bytes(uri, 2, 5) == b"234"
    assert storage.read_bytes(uri, 7) == b"789"
    assert storage.read_bytes(uri, None, 3) == b"012"
    assert storage.read_bytes(uri, 4, 4) == b""


def test_text_and_json(prefix: str) -> None:
    storage.write_json(storage.join(prefix, "a.json"), {"ünï": [1, 2]})
    assert storage.read_text(storage.join(prefix, "a.json")) == '{"ünï": [1, 2]}\n'


def test_exists(prefix: str) -> None:
    uri = storage.join(prefix, "here.txt")
    assert not storage.exists(uri)
    storage.write_text(uri, "x")
    assert storage.exists(uri)


def test_a_missing_object_is_a_job_failure_naming_it(prefix: str) -> None:
    uri = storage.join(prefix, "missing.jsonl")
    with pytest.raises(JobFailure, match="missing.jsonl"):
        storage.read_bytes(uri)
    with pytest.raises(FileNotFoundError):
        storage.read_text(uri)


def test_upload_and_download_a_directory(prefix: str, tmp_path: Path) -> None:
    source = tmp_path / "adapter"
    (source / "nested").mkdir(parents=True)
    (source / "adapter_config.json").write_text("{}")
    (source / "nested" / "weights.bin").write_bytes(b"\x00\x01")
    remote = storage.join(prefix, "ckpts", "3/")
    storage.upload_dir(source, remote)
    assert storage.read_bytes(storage.join(remote, "nested", "weights.bin")) == b"\x00\x01"

    copy = tmp_path / "copy"
    storage.download_dir(remote, copy)
    assert (copy / "adapter_config.json").read_text() == "{}"
    assert (copy / "nested" / "weights.bin").read_bytes() == b"\x00\x01"


def test_download_of_an_empty_prefix_fails(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(JobFailure, match="nothing-here"):
        storage.download_dir(storage.join(prefix, "nothing-here/"), tmp_path / "out")


def test_file_uris_are_percent_decoded(tmp_path: Path) -> None:
    path = tmp_path / "with space.txt"
    path.write_text("ok")
    assert storage.read_text(path.as_uri()) == "ok"


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="file:// or s3://"):
        storage.read_bytes("https://example.com/x")


def test_a_missing_input_is_named_without_its_location(tmp_path: Path) -> None:
    with pytest.raises(storage.BlobNotFound) as raised:
        storage.read_text((tmp_path / "jobs" / "3" / "output.jsonl").as_uri())
    assert str(raised.value) == (
        "An input this job needs is missing (output.jsonl); check that the job it comes from completed and was not deleted."
    )
    assert raised.value.__notes__ == [f"missing: {(tmp_path / 'jobs' / '3' / 'output.jsonl').as_uri()}"]
