"""Trainer jobs end to end on the tiny model: the real job through cli.run_job, against a fake relay."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from bakehouse_engine.cli import run_job
from bakehouse_engine.spec import SpecError, validate_spec
from bakehouse_engine.trainer.lora_trainer import LoraTrainer
from fake_relay import TOKEN
from fake_trainer_relay import FakeTrainerRelay, serve
from job_harness import TINY_MODEL, tiny_model, tiny_model_cache  # noqa: F401 — fixtures
from trainer_support import RANK, adam, datum, forward

TRAIN = forward([datum([5, 9, 14, 22], [9, 14, 22, 31]), datum([40, 41], [41, 42])], normalization="token_mean_deferred")


@pytest.fixture
def relay(tiny_model):
    with serve(FakeTrainerRelay()) as fake:
        yield fake


def trainer_spec(tmp_path: Path, relay_url: str, state_uri: str, **settings: object) -> dict:
    return {
        "version": 1,
        "job_id": 9,
        "output_uri": (tmp_path / "out").as_uri() + "/",
        "kind": "trainer",
        "trainer": {
            "run_id": "run_1",
            "model": {"base_model": TINY_MODEL, "adapters": []},
            "lora_rank": RANK,
            "seed": 0,
            "max_seq_len": None,
            "relay_url": relay_url,
            "relay_token": TOKEN,
            "idle_timeout_s": 1,
            "state_uri": state_uri,
            **settings,
        },
    }


def run_trainer(tmp_path: Path, relay: FakeTrainerRelay, state_uri: str, **settings: object) -> tuple[int, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(trainer_spec(tmp_path, relay.url, state_uri, **settings)))
    code = run_job(str(spec_path))
    return code, json.loads((tmp_path / "out" / "result.json").read_text())


def test_the_trainer_spec_is_checked_against_the_contract(tmp_path):
    spec = trainer_spec(tmp_path, "http://127.0.0.1:1", (tmp_path / "state").as_uri() + "/")
    validate_spec(spec)
    with pytest.raises(SpecError, match="invalid at trainer/relay_token"):
        validate_spec(spec | {"trainer": spec["trainer"] | {"relay_token": "short"}})


def test_operations_run_in_order_and_a_failed_one_leaves_the_trainer_serving(tmp_path, relay):
    ids = relay.push(
        {"kind": "init", "lora_rank": RANK},
        TRAIN,
        TRAIN | {"loss_fn": "dppo"},  # not a loss the contract knows
        forward([datum([5, 6], [6, -100])], normalization="token_mean_deferred"),  # negative targets: found by the engine
        adam(),
        {"kind": "save", "what": "sampler", "publish": True, "uri": (tmp_path / "sampler").as_uri() + "/"},
    )
    state_uri = (tmp_path / "state").as_uri() + "/"
    assert run_trainer(tmp_path, relay, state_uri) == (0, {"status": "complete", "error": None})

    (ready,) = relay.ready
    assert ready["step"] == 0 and ready["lora_config"]["r"] == RANK and ready["lora_config"]["lora_alpha"] == RANK
    assert list(relay.results) == ids  # answered one at a time, in order
    init, trained, unknown, negative, step, saved = (relay.result(i) for i in ids)
    assert init == {"status": "done", "result": {"step": 0, "lora_rank": RANK}}
    assert trained["status"] == "done" and trained["result"]["active_tokens"] == 6 and trained["result"]["loss"] > 0
    assert unknown["status"] == "error" and unknown["error_class"] == "ValueError"
    assert unknown["error"].startswith("The operation is invalid at operation/loss_fn:")
    assert negative["status"] == "error" and negative["error_class"] == "ValueError" and "weight 0" in negative["error"]
    assert step["status"] == "done" and step["result"]["step"] == 1 and step["result"]["grad_norm"] > 0
    assert saved["result"]["policy_version"] == 1
    assert sorted(path.name for path in (tmp_path / "sampler").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    # Idle: everything was saved where the next trainer of the run looks.
    assert json.loads((tmp_path / "state" / "trainer_state.json").read_text())["step"] == 1


def test_a_trainer_scaled_to_zero_comes_back_where_it_stopped(tmp_path, relay):
    state_uri = (tmp_path / "state").as_uri() + "/"
    relay.push(TRAIN, adam(), TRAIN)  # the last gradient is still pending when the trainer idles out
    assert run_trainer(tmp_path / "first", relay, state_uri)[0] == 0

    (step_id,) = relay.push(adam())
    assert run_trainer(tmp_path / "second", relay, state_uri)[0] == 0
    assert relay.ready[1]["step"] == 1
    step = relay.result(step_id)["result"]
    assert step["step"] == 2 and step["grad_norm"] > 0  # the accumulated gradient came back with the state


def test_a_410_stops_the_trainer_at_once_without_saving(tmp_path, relay):
    relay.gone_after = 1
    ids = relay.push(TRAIN, adam())
    started = time.monotonic()
    code, result = run_trainer(tmp_path, relay, (tmp_path / "state").as_uri() + "/", idle_timeout_s=60)
    assert (code, result) == (0, {"status": "complete", "error": None})
    assert time.monotonic() - started < 30  # not after the idle timeout
    assert list(relay.results) == ids[:1]
    assert not (tmp_path / "state").exists()


def test_a_refused_token_fails_the_job(tmp_path, relay):
    relay.status = 401
    code, result = run_trainer(tmp_path, relay, (tmp_path / "state").as_uri() + "/")
    assert code == 1 and result["status"] == "failed"
    assert result["error"].startswith("The relay refused the trainer's token (401)")


def test_relay_outages_are_retried(tmp_path, relay):
    relay.failures_left = 3
    (op_id,) = relay.push({"kind": "init", "lora_rank": RANK})
    assert run_trainer(tmp_path, relay, (tmp_path / "state").as_uri() + "/")[0] == 0
    assert relay.result(op_id)["status"] == "done"


def test_client_activity_keeps_an_idle_trainer_up(tmp_path, relay):
    """The API's `idle_s` counts a client's health checks: the trainer waits out the later of those and its own work."""
    relay.client_active_until = time.monotonic() + 3
    started = time.monotonic()
    assert run_trainer(tmp_path, relay, (tmp_path / "state").as_uri() + "/")[0] == 0
    assert time.monotonic() - started >= 3


def test_engine_faults_are_answered_as_runtime_errors_and_the_trainer_carries_on(tmp_path, relay, monkeypatch):
    def out_of_memory(self, op):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def broken(self, op):
        raise KeyError("/opt/internal/state")

    monkeypatch.setattr(LoraTrainer, "forward", out_of_memory)
    monkeypatch.setattr(LoraTrainer, "init", broken)
    ids = relay.push(TRAIN, {"kind": "init", "lora_rank": RANK}, adam())
    assert run_trainer(tmp_path, relay, (tmp_path / "state").as_uri() + "/")[0] == 0

    memory, fault, step = (relay.result(i) for i in ids)
    assert memory == {
        "status": "error",
        "error": "The trainer ran out of memory running forward; send fewer or shorter sequences per call and try again.",
        "error_class": "RuntimeError",
    }
    assert fault["error_class"] == "RuntimeError" and "(KeyError)" in fault["error"] and "/opt" not in fault["error"]
    assert step == {"status": "done", "result": {"step": 1, "learning_rate": 1e-2, "grad_norm": 0.0}}
