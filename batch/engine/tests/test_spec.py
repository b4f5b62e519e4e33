import json
from pathlib import Path

import pytest

from bakehouse_engine import storage
from bakehouse_engine.spec import SpecError, load_spec, validate_spec
from conftest import stim_spec

OUT = "file:///tmp/out/"


def test_a_valid_stim_spec_loads_from_a_path_and_a_uri(tmp_path: Path) -> None:
    spec = stim_spec(OUT, [{"type": "hardcoded", "questions": ["Hi?"]}])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert load_spec(str(path)) == spec
    assert load_spec(path.as_uri()) == spec


def test_a_spec_on_s3_loads(s3_bucket: str) -> None:
    spec = stim_spec(OUT, [{"type": "persona", "numq": 2}])
    storage.write_json(s3_bucket + "specs/1.json", spec)
    assert load_spec(s3_bucket + "specs/1.json") == spec


def test_a_violation_names_the_field_and_keeps_the_output_uri() -> None:
    spec = stim_spec(OUT, [{"type": "telepathy", "numq": 2}])
    with pytest.raises(SpecError, match=r"stim/generators/0/type: 'telepathy' is not one of") as raised:
        validate_spec(spec)
    assert raised.value.output_uri == OUT


def test_missing_required_fields_are_reported() -> None:
    spec = stim_spec(OUT, [{"type": "persona", "numq": 2}])
    del spec["stim"]["teacher_prompt"]
    with pytest.raises(SpecError, match="'teacher_prompt' is a required property"):
        validate_spec(spec)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(SpecError, match="kind must be one of stim, rollout, bake, sampler, trainer, not 'train'"):
        validate_spec({"kind": "train", "output_uri": OUT})


def test_an_output_uri_must_be_a_prefix() -> None:
    spec = stim_spec("file:///tmp/out", [{"type": "persona", "numq": 2}])
    with pytest.raises(SpecError, match="output_uri") as raised:
        validate_spec(spec)
    assert raised.value.output_uri is None


def test_unreadable_and_malformed_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="could not be read"):
        load_spec(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(str(bad))


def test_rollout_and_bake_specs_validate() -> None:
    model = {"base_model": "bakehouse/toy-instruct", "adapters": []}
    validate_spec({
        "version": 1, "job_id": 2, "output_uri": OUT, "kind": "rollout",
        "rollout": {"stim_output_uri": "file:///tmp/stim/output.jsonl", "model": model, "num_traj_per_stimulus": 2,
                    "temperature": 1.0, "max_tokens": None, "max_concurrency": 4, "extra_kwargs": {}, "tools": None, "seed": 0},
    })
    validate_spec({
        "version": 1, "job_id": 3, "output_uri": OUT, "kind": "bake",
        "bake": {"config": {"epochs": 1}, "datasets": [{"target": "t", "weight": 1, "rollout_output_uri": "file:///r/output.jsonl"}],
                 "total_trajectories": 4, "model": model, "model_name_prefix": "u/r/b"},
    })


def test_a_sampler_spec_validates_and_needs_a_long_relay_token() -> None:
    sampler = {
        "base_model": "bakehouse/toy-instruct", "relay_url": "http://127.0.0.1:8080", "relay_token": "t" * 32,
        "idle_timeout_s": 300, "max_hot_adapters": 4, "max_batch": 8, "max_unset_tokens": 4096,
    }
    spec = {"version": 1, "job_id": 4, "output_uri": OUT, "kind": "sampler", "sampler": sampler}
    validate_spec(spec)
    with pytest.raises(SpecError, match="invalid at sampler/relay_token"):
        validate_spec(spec | {"sampler": sampler | {"relay_token": "short"}})
