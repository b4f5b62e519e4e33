"""The toy model in the local model cache, built on first use.

The cache lives at $BAKEHOUSE_MODEL_CACHE (default ~/.cache/bakehouse/models), one directory per
model name. Concurrent jobs share one build through a file lock; a model from an older recipe
(another TOY_MODEL_VERSION) is rebuilt.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

TOY_MODEL_NAME = "bakehouse/toy-instruct"
MANIFEST = "bakehouse_toy.json"
# Raise when the recipe (corpus, tokenizer, model, training) changes: cached models are then rebuilt.
TOY_MODEL_VERSION = 1

log = logging.getLogger(__name__)


def model_cache_dir() -> Path:
    configured = os.environ.get("BAKEHOUSE_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "bakehouse" / "models"


def ensure_toy_model() -> Path:
    """The toy model's directory in the cache, building it there first if it is missing or stale."""
    target = model_cache_dir() / TOY_MODEL_NAME
    if _built_version(target) == TOY_MODEL_VERSION:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _built_version(target) == TOY_MODEL_VERSION:  # another process built it while we waited
            return target
        # Builders hold the lock, so any staging directory still here is from a killed build.
        for leftover in target.parent.glob(f".{target.name}-build-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        log.info("Building the toy model into %s (a few minutes, once)", target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-build-", dir=target.parent))
        try:
            from bakehouse_engine.toy import train  # torch and transformers load only to build

            train.build_toy_model(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _built_version(model_dir: Path) -> int | None:
    try:
        return json.loads((model_dir / MANIFEST).read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
