"""What a job writes under its output prefix while it runs: output lines, progress, metrics and its log.

Readers (the API's output and status routes) poll these objects while the job runs, so each write
leaves a consistent state: an `output.idx` entry only ever points at a complete line, and
`progress.json` never counts lines that are not readable yet.

For file:// prefixes the files are appended in place. S3 has no append, so for s3:// prefixes the
files grow in the job's work dir and are uploaded whole, on a throttle and at the end.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from bakehouse_engine import storage

LOCAL_PROGRESS_INTERVAL_S = 1.0
# Each S3 sync re-uploads the files whole, so it runs less often than a local write.
S3_SYNC_INTERVAL_S = 5.0


class _Syncable(Protocol):
    def sync(self) -> None: ...


class _AppendOnlyFiles:
    """Files that only grow, mirrored to the output prefix; for S3, uploaded in the order given."""

    def __init__(self, output_uri: str, workdir: Path, names: tuple[str, ...]) -> None:
        self._uris = [storage.join(output_uri, name) for name in names]
        local_dir = storage.local_path(output_uri)
        self._remote = local_dir is None
        self.paths = [(workdir if local_dir is None else local_dir) / name for name in names]
        self._dirty = False
        self._last_sync: float | None = None  # never synced: the first write goes up at once

    def open_for_append(self) -> list[Any]:
        """Opens the files, truncating what an earlier attempt with the same prefix left."""
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        return [path.open("wb") for path in self.paths]

    def mark_written(self) -> None:
        self._dirty = True
        if self._remote and (self._last_sync is None or time.monotonic() - self._last_sync >= S3_SYNC_INTERVAL_S):
            self.sync()

    def sync(self) -> None:
        if not (self._remote and self._dirty):
            return
        for path, uri in zip(self.paths, self._uris):
            storage.upload_file(path, uri)
        self._dirty = False
        self._last_sync = time.monotonic()


class OutputLines:
    """`output.jsonl` plus `output.idx` (one little-endian uint64 byte offset per line)."""

    def __init__(self, output_uri: str, workdir: Path) -> None:
        # output.jsonl is uploaded before output.idx, so every offset a reader finds is readable.
        self._files = _AppendOnlyFiles(output_uri, workdir, ("output.jsonl", "output.idx"))
        self._lock = threading.Lock()
        self._handles: list[Any] | None = None
        self._size = 0
        self.count = 0

    def append(self, line: dict) -> None:
        data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._handles is None:
                self._handles = self._files.open_for_append()
            jsonl, idx = self._handles
            jsonl.write(data)
            jsonl.flush()
            idx.write(struct.pack("<Q", self._size))
            idx.flush()
            self._size += len(data)
            self.count += 1
            self._files.mark_written()

    def sync(self) -> None:
        with self._lock:
            self._files.sync()

    def close(self) -> None:
        with self._lock:
            for handle in self._handles or []:
                handle.close()
            self._files.sync()


class Metrics:
    """`metrics.jsonl`: one MetricsRow per logged training iteration."""

    def __init__(self, output_uri: str, workdir: Path) -> None:
        self._files = _AppendOnlyFiles(output_uri, workdir, ("metrics.jsonl",))
        self._lock = threading.Lock()
        self._handle: Any | None = None

    def append(self, row: dict) -> None:
        with self._lock:
            if self._handle is None:
                (self._handle,) = self._files.open_for_append()
            self._handle.write((json.dumps(row) + "\n").encode("utf-8"))
            self._handle.flush()
            self._files.mark_written()

    def sync(self) -> None:
        with self._lock:
            self._files.sync()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
            self._files.sync()


class Progress:
    """`progress.json` (JobProgress). Writes are throttled; percent 100 and `flush` write at once.

    `sync_first` are synced before each write, so progress never gets ahead of what is readable.
    """

    def __init__(self, output_uri: str, sync_first: tuple[_Syncable, ...] = ()) -> None:
        self._uri = storage.join(output_uri, "progress.json")
        self._sync_first = sync_first
        self._interval = LOCAL_PROGRESS_INTERVAL_S if storage.local_path(self._uri) else S3_SYNC_INTERVAL_S
        self._lock = threading.Lock()
        self._pending: tuple[float, int] | None = None
        self._last_write: float | None = None

    def update(self, percent: float, lines: int) -> None:
        with self._lock:
            self._pending = (min(100.0, max(0.0, float(percent))), int(lines))
            due = self._last_write is None or time.monotonic() - self._last_write >= self._interval
            if percent >= 100 or due:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        if self._pending is None:
            return
        for syncable in self._sync_first:
            syncable.sync()
        percent, lines = self._pending
        updated_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        storage.write_json(self._uri, {"percent": round(percent, 4), "lines": lines, "updated_at": updated_at})
        self._pending = None
        self._last_write = time.monotonic()


class EngineLog:
    """`engine.log`: everything the engine logs while it runs the job, for its owner to download.

    It holds the detail behind result.json's one-sentence error (tracebacks included). For file://
    prefixes it is written in place as records come, so an engine killed mid-job leaves what it
    logged until then; for s3:// it is uploaded when the job ends (a killed engine's log is then
    only in the platform's own log, CloudWatch on AWS Batch).
    """

    FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

    def __init__(self, output_uri: str, workdir: Path) -> None:
        self._uri = storage.join(output_uri, "engine.log")
        local_dir = storage.local_path(output_uri)
        self._remote = local_dir is None
        self.path = (workdir if local_dir is None else local_dir) / "engine.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler: logging.Handler | None = logging.FileHandler(self.path, mode="w", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(self.FORMAT))
        # On the root logger, so that what libraries log (transformers, peft) is kept too.
        logging.getLogger().addHandler(self._handler)

    def close(self) -> None:
        """Stops capturing and publishes the log; a second call does nothing."""
        if self._handler is None:
            return
        logging.getLogger().removeHandler(self._handler)
        self._handler.close()
        self._handler = None
        if self._remote:
            storage.upload_file(self.path, self._uri)
