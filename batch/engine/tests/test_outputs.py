import json
import struct
from pathlib import Path

import pytest

from bakehouse_engine import outputs, storage
from bakehouse_engine.outputs import Metrics, OutputLines, Progress
from conftest import read_lines


def offsets(prefix: str) -> list[int]:
    data = storage.read_bytes(storage.join(prefix, "output.idx"))
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def test_each_line_is_indexed_by_its_byte_offset(prefix: str, tmp_path: Path) -> None:
    lines = OutputLines(prefix, tmp_path / "work")
    rows = [{"stimulus_id": i, "text": "é" * i} for i in range(4)]
    for row in rows:
        lines.append(row)
    lines.close()

    assert lines.count == 4
    assert read_lines(prefix) == rows
    jsonl = storage.join(prefix, "output.jsonl")
    ends = offsets(prefix)[1:] + [len(storage.read_bytes(jsonl))]
    for row, start, end in zip(rows, offsets(prefix), ends):
        assert json.loads(storage.read_bytes(jsonl, start, end)) == row


def test_a_new_job_replaces_lines_left_by_an_earlier_attempt(tmp_path: Path) -> None:
    prefix = tmp_path.as_uri() + "/out/"
    first = OutputLines(prefix, tmp_path)
    first.append({"n": 1})
    first.append({"n": 2})
    first.close()
    second = OutputLines(prefix, tmp_path)
    second.append({"n": 3})
    second.close()
    assert read_lines(prefix) == [{"n": 3}]
    assert offsets(prefix) == [0]


def test_local_lines_are_readable_before_close(tmp_path: Path) -> None:
    prefix = tmp_path.as_uri() + "/out/"
    lines = OutputLines(prefix, tmp_path / "work")
    lines.append({"n": 1})
    assert read_lines(prefix) == [{"n": 1}]
    assert offsets(prefix) == [0]
    lines.close()


def test_s3_lines_are_uploaded_on_sync_and_close(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "S3_SYNC_INTERVAL_S", 3600.0)
    prefix = s3_bucket + "jobs/2/"
    lines = OutputLines(prefix, tmp_path)
    lines.append({"n": 1})  # the first append syncs: nothing was uploaded yet
    lines.append({"n": 2})
    assert read_lines(prefix) == [{"n": 1}]
    assert offsets(prefix) == [0]
    lines.sync()
    assert read_lines(prefix) == [{"n": 1}, {"n": 2}]
    lines.append({"n": 3})
    lines.close()
    assert [row["n"] for row in read_lines(prefix)] == [1, 2, 3]
    assert len(offsets(prefix)) == 3


def test_progress_is_throttled_but_final_and_flushed_values_are_written(tmp_path: Path) -> None:
    prefix = tmp_path.as_uri() + "/out/"
    progress = Progress(prefix)
    progress.update(10, 1)
    progress.update(20, 2)  # within the throttle window: held back
    read = lambda: json.loads(storage.read_text(storage.join(prefix, "progress.json")))  # noqa: E731
    assert (read()["percent"], read()["lines"]) == (10, 1)
    progress.flush()
    assert (read()["percent"], read()["lines"]) == (20, 2)
    progress.update(100, 3)
    assert read()["percent"] == 100 and read()["lines"] == 3
    assert read()["updated_at"].endswith("Z")


def test_progress_syncs_lines_before_it_counts_them(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "S3_SYNC_INTERVAL_S", 3600.0)
    prefix = s3_bucket + "jobs/3/"
    lines = OutputLines(prefix, tmp_path)
    progress = Progress(prefix, (lines,))
    for n in range(3):
        lines.append({"n": n})
    progress.update(100, lines.count)
    assert len(read_lines(prefix)) == json.loads(storage.read_text(storage.join(prefix, "progress.json")))["lines"] == 3


def test_metrics_rows_are_appended(prefix: str, tmp_path: Path) -> None:
    metrics = Metrics(prefix, tmp_path)
    metrics.append({"iter": 1, "loss": 0.5})
    metrics.append({"iter": 2, "loss": 0.25})
    metrics.close()
    rows = [json.loads(line) for line in storage.read_text(storage.join(prefix, "metrics.jsonl")).splitlines()]
    assert rows == [{"iter": 1, "loss": 0.5}, {"iter": 2, "loss": 0.25}]
