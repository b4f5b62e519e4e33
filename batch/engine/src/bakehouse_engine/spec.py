"""Loading a job spec and checking it against the contract (batch/contract/job-spec.schema.json).

The contract's schemas are generated from the control plane's zod schemas, so the engine validates
against the very files the API was built from. Outside the source tree (an installed image) their
directory is given by BAKEHOUSE_CONTRACT_DIR.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from bakehouse_engine import storage
from bakehouse_engine.errors import JobFailure

JOB_KINDS = {
    "stim": "StimJobSpec",
    "rollout": "RolloutJobSpec",
    "bake": "BakeJobSpec",
    "sampler": "SamplerJobSpec",
    "trainer": "TrainerJobSpec",
}
_PREFIX_URI = re.compile(r"^(file|s3)://.+/$")


class SpecError(JobFailure):
    """The job spec cannot be read or breaks the contract. `output_uri` is set when the spec names
    a usable one, so the failure can still be reported in result.json."""

    def __init__(self, message: str, output_uri: str | None = None) -> None:
        super().__init__(message)
        self.output_uri = output_uri


def contract_dir() -> Path:
    configured = os.environ.get("BAKEHOUSE_CONTRACT_DIR")
    # src/bakehouse_engine/spec.py → batch/engine/src/bakehouse_engine → batch/contract
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "contract"


def load_spec(source: str) -> dict:
    """Reads a spec from a local path or a file:// / s3:// URI and validates it."""
    try:
        if source.startswith(("file://", "s3://")):
            text = storage.read_text(source)
        else:
            text = Path(source).read_text(encoding="utf-8")
    except (OSError, JobFailure) as error:
        raise SpecError(f"The job spec could not be read from {source}: {error}") from error
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(f"The job spec at {source} is not valid JSON: {error}.") from error
    validate_spec(spec)
    return spec


def validate_spec(spec: Any) -> None:
    """Raises SpecError with the most relevant violation, judged against the spec's own kind."""
    output_uri = spec.get("output_uri") if isinstance(spec, dict) else None
    output_uri = output_uri if isinstance(output_uri, str) and _PREFIX_URI.match(output_uri) else None
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in JOB_KINDS:
        raise SpecError(f"The job spec's kind must be one of {', '.join(JOB_KINDS)}, not {kind!r}.", output_uri)
    error = best_match(contract_validator("job-spec.schema.json", JOB_KINDS[kind]).iter_errors(spec))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise SpecError(f"The {kind} job spec is invalid at {where}: {error.message}.", output_uri)


@cache
def contract_validator(schema_file: str, definition: str) -> Draft202012Validator:
    """A validator for one definition of a contract file, e.g. the job spec of one kind.

    Validating against the kind's own definition matters: a oneOf over all kinds reports only
    "not valid under any of the given schemas", which tells the user nothing.
    """
    schema = json.loads((contract_dir() / schema_file).read_text(encoding="utf-8"))
    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})
