"""Blob access for job inputs and outputs: `file:///abs/path` and `s3://bucket/key` URIs.

The control plane hands the engine URIs from its Blobs port (`uriFor`), so the same job runs on a
laptop (local files) and on AWS Batch (S3). S3 calls honour `AWS_ENDPOINT_URL`, which is how tests
and emulators point the engine elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from bakehouse_engine.errors import JobFailure


class BlobNotFound(JobFailure, FileNotFoundError):
    """No object at a URI the job needs; a JobFailure, since the user can fix the input."""

    def __init__(self, uri: str) -> None:
        # The URI is internal (the API's storage layout); the job's log names it, the sentence does not.
        super().__init__(f"An input this job needs is missing ({_object_name(uri)}); check that the job it comes from completed and was not deleted.")
        self.add_note(f"missing: {uri}")  # shown with the traceback in the job's log
        self.uri = uri


def _object_name(uri: str) -> str:
    """The last part of a URI (`output.jsonl`, `ckpts/40/`), which says what is missing without saying where."""
    parts = [part for part in urlparse(uri).path.split("/") if part]
    return "/".join(parts[-2:]) if uri.endswith("/") else (parts[-1] if parts else "an object")


def join(prefix: str, *parts: str) -> str:
    """`join("s3://b/jobs/1/", "ckpts", "10/")` → `s3://b/jobs/1/ckpts/10/` (a final `/` is kept)."""
    pieces = [prefix.rstrip("/")] + [part.strip("/") for part in parts if part.strip("/")]
    joined = "/".join(pieces)
    return joined + "/" if parts and parts[-1].endswith("/") else joined


def read_bytes(uri: str, start: int | None = None, end: int | None = None) -> bytes:
    """The object's bytes, or the range [start, end) of them."""
    if start is not None and end is not None and end <= start:
        return b""
    if _is_s3(uri):
        bucket, key = _s3_location(uri)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start is not None or end is not None:
            kwargs["Range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        try:
            return _s3().get_object(**kwargs)["Body"].read()
        except _s3().exceptions.NoSuchKey as error:
            raise BlobNotFound(uri) from error
    path = _local_path(uri)
    try:
        with path.open("rb") as file:
            file.seek(start or 0)
            return file.read() if end is None else file.read(end - (start or 0))
    except FileNotFoundError as error:
        raise BlobNotFound(uri) from error


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    """Writes the whole object; local writes go through a rename so readers never see half a file."""
    if _is_s3(uri):
        bucket, key = _s3_location(uri)
        _s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = _local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def write_json(uri: str, obj: Any) -> None:
    write_text(uri, json.dumps(obj, ensure_ascii=False) + "\n")


def exists(uri: str) -> bool:
    if _is_s3(uri):
        bucket, key = _s3_location(uri)
        try:
            _s3().head_object(Bucket=bucket, Key=key)
            return True
        except _s3().exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return _local_path(uri).exists()


def upload_file(local_file: Path, uri: str) -> None:
    """Copies one local file to a URI (multipart for large files on S3)."""
    if _is_s3(uri):
        bucket, key = _s3_location(uri)
        _s3().upload_file(str(local_file), bucket, key)
        return
    path = _local_path(uri)
    if path.resolve() == local_file.resolve():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    shutil.copyfile(local_file, partial)
    partial.replace(path)


def upload_dir(local_dir: Path, prefix: str) -> None:
    """Copies every file under local_dir to the same relative key under prefix."""
    for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        upload_file(file, join(prefix, file.relative_to(local_dir).as_posix()))


def download_dir(prefix: str, local_dir: Path) -> None:
    """Copies every object under prefix into local_dir, keeping relative paths."""
    local_dir.mkdir(parents=True, exist_ok=True)
    if _is_s3(prefix):
        bucket, key_prefix = _s3_location(prefix.rstrip("/") + "/")
        found = False
        for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(key_prefix):]
                if not relative or relative.endswith("/"):
                    continue
                target = local_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                _s3().download_file(bucket, item["Key"], str(target))
                found = True
        if not found:
            raise BlobNotFound(prefix)
        return
    source = _local_path(prefix)
    if not source.is_dir():
        raise BlobNotFound(prefix)
    shutil.copytree(source, local_dir, dirs_exist_ok=True)


def local_path(uri: str) -> Path | None:
    """The filesystem path behind a file:// URI, or None for S3 (callers may then work in place)."""
    return None if _is_s3(uri) else _local_path(uri)


def _is_s3(uri: str) -> bool:
    if uri.startswith("s3://"):
        return True
    if uri.startswith("file://"):
        return False
    raise ValueError(f"Unsupported URI {uri!r}: expected file:// or s3://")


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"Unsupported file URI {uri!r}: expected file:///absolute/path")
    return Path(unquote(parsed.path))


def _s3_location(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


_client_lock = threading.Lock()
_clients: dict[str | None, Any] = {}


def _s3() -> Any:
    """One client per endpoint, shared across threads (clients are thread-safe; creating them is not)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    with _client_lock:
        if endpoint not in _clients:
            import boto3  # imported here so file:// jobs never pay for it

            _clients[endpoint] = boto3.client("s3", endpoint_url=endpoint)
        return _clients[endpoint]


def reset_clients() -> None:
    """Forgets cached S3 clients (tests swap endpoints and credentials between cases)."""
    with _client_lock:
        _clients.clear()
