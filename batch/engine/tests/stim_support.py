"""Runs stim jobs through the CLI, as the control plane does, and reads back what they wrote."""

from __future__ import annotations

import json
from pathlib import Path

from bakehouse_engine import storage
from bakehouse_engine.cli import main
from conftest import read_lines, stim_spec


def run_stim(tmp_path: Path, generators: list[dict], **stim: object) -> tuple[int, dict, list[dict]]:
    """Exit code, result.json and output lines of a stim job with these generators."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    prefix = tmp_path.as_uri() + "/stim-out/"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(stim_spec(prefix, generators, **stim)))
    code = main(["run", str(spec_file)])
    result = json.loads(storage.read_text(storage.join(prefix, "result.json")))
    lines = read_lines(prefix) if storage.exists(storage.join(prefix, "output.jsonl")) else []
    return code, result, lines


def questions(lines: list[dict]) -> list[str]:
    return [line["unconditioned_stimulus"]["messages"][-1]["content"] for line in lines]
