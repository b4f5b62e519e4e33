"""save and load (state and sampler weights, on local files and S3), publishing, and the idle autosave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from bakehouse_engine import storage
from bakehouse_engine.trainer import checkpoints
from bakehouse_engine.trainer.errors import InvalidInput
from job_harness import TINY_MODEL, tiny_model_cache  # noqa: F401 — fixture
from test_trainer_steps import FIRST, SECOND
from trainer_support import adam, adapter_weights, assert_close_dicts, forward, grads, make_trainer, trainer  # noqa: F401

TIGHT = {"rtol": 1e-6, "atol": 1e-7}


def save(trainer, uri: str, scratch: Path, what: str = "state", publish: bool = False) -> dict:
    return checkpoints.save(trainer, {"kind": "save", "what": what, "publish": publish, "uri": uri}, scratch)


def load(trainer, uri: str, scratch: Path, with_optimizer: bool) -> dict:
    return checkpoints.load(trainer, {"kind": "load", "uri": uri, "with_optimizer": with_optimizer}, scratch)


def train_step(trainer, data) -> None:
    trainer.forward(forward(data, normalization="token_mean_deferred"))
    trainer.optim_step(adam(weight_decay=0.01))


def test_a_state_round_trip_resumes_training_exactly(tiny_model_cache, prefix, tmp_path):
    trainer = make_trainer(tiny_model_cache)
    train_step(trainer, FIRST)
    train_step(trainer, SECOND)
    saved = save(trainer, prefix + "weights/s2/", tmp_path)
    train_step(trainer, FIRST)
    continued = adapter_weights(trainer)

    assert [file["name"] for file in saved["files"]] == ["adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "trainer_state.json"]
    for file in saved["files"]:
        assert len(storage.read_bytes(storage.join(prefix, "weights/s2", file["name"]))) == file["size_bytes"] > 0
    assert saved["step"] == 2 and saved["lora_config"] == trainer.lora_config

    other = make_trainer(tiny_model_cache, seed=5)  # another trainer, other weights: everything comes from the files
    assert load(other, prefix + "weights/s2/", tmp_path, with_optimizer=True) == {"step": 2}
    train_step(other, FIRST)
    assert other.step == 3
    assert_close_dicts(adapter_weights(other), continued, **TIGHT)


def test_loading_without_the_optimizer_keeps_the_step_and_starts_adam_afresh(tiny_model_cache, tmp_path):
    trainer = make_trainer(tiny_model_cache)
    train_step(trainer, FIRST)
    uri = (tmp_path / "state").as_uri() + "/"
    save(trainer, uri, tmp_path)
    weights = adapter_weights(trainer)

    fresh = make_trainer(tiny_model_cache, perturb=False)
    fresh.forward(forward(SECOND))
    assert load(fresh, uri, tmp_path, with_optimizer=False) == {"step": 0}
    assert_close_dicts(adapter_weights(fresh), weights)
    assert fresh.optimizer.state_dict()["state"] == {} and fresh.gradient is None and grads(fresh) == {}
    # The loaded adapter is not the base model, so its first publish is version 1, not 0.
    assert save(fresh, (tmp_path / "sampler").as_uri() + "/", tmp_path, "sampler", publish=True)["policy_version"] == 1


def test_sampler_weights_are_a_peft_adapter_any_peft_user_loads(tiny_model_cache, tmp_path):
    trainer = make_trainer(tiny_model_cache)
    train_step(trainer, FIRST)
    out = tmp_path / "sampler"
    saved = save(trainer, out.as_uri() + "/", tmp_path, "sampler")
    assert sorted(path.name for path in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert [file["name"] for file in saved["files"]] == ["adapter_model.safetensors", "adapter_config.json"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (4, 4, TINY_MODEL)

    base = AutoModelForCausalLM.from_pretrained(tiny_model_cache / TINY_MODEL)
    loaded = PeftModel.from_pretrained(base, str(out)).eval()
    tokens = torch.tensor([[5, 9, 14, 22, 31, 7]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=tokens).logits, trainer.model(input_ids=tokens).logits)
        with loaded.disable_adapter():  # the adapter does change the model
            assert not torch.allclose(loaded(input_ids=tokens).logits, trainer.model(input_ids=tokens).logits)


def test_publishing_makes_the_step_the_policy_version(trainer, tmp_path):
    uri = (tmp_path / "sampler").as_uri() + "/"
    assert save(trainer, uri, tmp_path, "sampler", publish=True)["policy_version"] == 0  # nothing trained: the base model
    train_step(trainer, FIRST)
    train_step(trainer, SECOND)
    assert save(trainer, uri, tmp_path, "sampler", publish=False)["policy_version"] == 0  # staged, not published
    assert save(trainer, uri, tmp_path, "sampler", publish=True)["policy_version"] == 2
    train_step(trainer, FIRST)
    assert save(trainer, (tmp_path / "state").as_uri() + "/", tmp_path)["policy_version"] == 2


def test_loads_that_cannot_fit_say_why(tiny_model_cache, tmp_path):
    trainer = make_trainer(tiny_model_cache)
    sampler_uri = (tmp_path / "sampler").as_uri() + "/"
    save(trainer, sampler_uri, tmp_path, "sampler")
    with pytest.raises(InvalidInput, match="sampler weights without optimizer state"):
        load(trainer, sampler_uri, tmp_path, with_optimizer=True)
    with pytest.raises(InvalidInput, match="Nothing is saved at that checkpoint path"):
        load(trainer, (tmp_path / "missing").as_uri() + "/", tmp_path, with_optimizer=False)

    config_path = tmp_path / "sampler" / "adapter_config.json"
    config_path.write_text(json.dumps(json.loads(config_path.read_text()) | {"r": 8}))
    with pytest.raises(InvalidInput, match="rank 8; this run trains rank 4"):
        load(trainer, sampler_uri, tmp_path, with_optimizer=False)


def test_the_idle_autosave_restores_everything_including_the_gradient(tiny_model_cache, prefix, tmp_path):
    trainer = make_trainer(tiny_model_cache)
    train_step(trainer, FIRST)
    save(trainer, (tmp_path / "published").as_uri() + "/", tmp_path, "sampler", publish=True)
    trainer.forward(forward(SECOND, normalization="token_mean_deferred"))
    trainer.forward(forward(FIRST, normalization="token_mean_deferred"))
    checkpoints.autosave(trainer, prefix + "autosave/", tmp_path)

    back = make_trainer(tiny_model_cache, seed=9)
    assert checkpoints.restore(back, prefix + "autosave/", tmp_path)
    assert (back.step, back.policy_version, back.gradient) == (1, 1, trainer.gradient)
    assert_close_dicts(grads(back), grads(trainer))
    assert_close_dicts(adapter_weights(back), adapter_weights(trainer))
    assert back.optim_step(adam()) == trainer.optim_step(adam())
    assert_close_dicts(adapter_weights(back), adapter_weights(trainer), **TIGHT)


def test_a_trainer_without_an_autosave_starts_fresh(trainer, tmp_path):
    assert not checkpoints.restore(trainer, (tmp_path / "nothing").as_uri() + "/", tmp_path)
    assert trainer.step == 0
