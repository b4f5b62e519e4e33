"""Saving and loading a trainer's state under a file:// or s3:// prefix.

Files, under the prefix:
- `adapter_model.safetensors`, `adapter_config.json` — the adapter as PEFT's save_pretrained writes
  it, so any PEFT user loads it with `PeftModel.from_pretrained` (both saves);
- `optimizer.pt` — the AdamW state (`torch.save` of its state_dict), and `trainer_state.json` —
  step, policy version and LoRA config (a state save);
- for the autosave before an idle exit also `gradient.safetensors` (the gradient accumulated since
  the last optim_step) with its normalisation and active-token count in trainer_state.json, so a
  trainer scaled to zero comes back exactly where it stopped.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bakehouse_engine import storage
from bakehouse_engine.trainer.errors import InvalidInput
from bakehouse_engine.trainer.lora_trainer import Gradient, LoraTrainer

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
STATE_FILES = (*ADAPTER_FILES, "optimizer.pt", "trainer_state.json")
GRADIENT_FILE = "gradient.safetensors"


def save(trainer: LoraTrainer, op: dict, scratch: Path) -> dict:
    """The `save` operation: what=sampler writes the adapter (publish makes it the policy version),
    what=state the resumable state."""
    if op["what"] == "sampler" and op["publish"]:
        trainer.policy_version = max(trainer.step, trainer.version_floor)
    with tempfile.TemporaryDirectory(dir=scratch) as local:
        names = _write(trainer, Path(local), state=op["what"] == "state", gradient=False)
        files = _upload(Path(local), names, op["uri"])
    return {"step": trainer.step, "policy_version": trainer.policy_version, "files": files, "lora_config": trainer.lora_config}


def load(trainer: LoraTrainer, op: dict, scratch: Path) -> dict:
    """The `load` operation: the adapter's weights; with_optimizer also the optimizer and the step."""
    with tempfile.TemporaryDirectory(dir=scratch) as local:
        try:
            storage.download_dir(op["uri"], Path(local))
        except storage.BlobNotFound as error:
            raise InvalidInput("Nothing is saved at that checkpoint path; check its name and that its save completed.") from error
        state = _read_state(Path(local))
        if op["with_optimizer"] and (state is None or not (Path(local) / "optimizer.pt").is_file()):
            raise InvalidInput(
                "That checkpoint holds sampler weights without optimizer state; load it without the optimizer, or "
                "load a state saved with save_state."
            )
        _read_adapter(trainer, Path(local))
        if op["with_optimizer"]:
            _read_optimizer(trainer, Path(local))
            trainer.step = state["step"]
        else:
            trainer.reset_optimizer()
    trainer.clear_gradient()
    trainer.version_floor = 1
    trainer.policy_version = max(trainer.policy_version, 1)
    return {"step": trainer.step}


def autosave(trainer: LoraTrainer, uri: str, scratch: Path) -> None:
    with tempfile.TemporaryDirectory(dir=scratch) as local:
        names = _write(trainer, Path(local), state=True, gradient=True)
        _upload(Path(local), names, uri)


def restore(trainer: LoraTrainer, uri: str, scratch: Path) -> bool:
    """Restores an autosave under `uri`, if there is one; True when it did."""
    if not storage.exists(storage.join(uri, "trainer_state.json")):
        return False
    with tempfile.TemporaryDirectory(dir=scratch) as local:
        storage.download_dir(uri, Path(local))
        state = _read_state(Path(local))
        _read_adapter(trainer, Path(local))
        _read_optimizer(trainer, Path(local))
        trainer.clear_gradient()
        if state.get("gradient"):
            grads = load_file(str(Path(local) / GRADIENT_FILE), device=str(trainer.parameters[0].device))
            for name, parameter in _trained(trainer):
                parameter.grad = grads.get(name)
            trainer.gradient = Gradient(**state["gradient"])
    trainer.step = state["step"]
    trainer.policy_version = state["policy_version"]
    trainer.version_floor = state["version_floor"]
    return True


def _write(trainer: LoraTrainer, local: Path, state: bool, gradient: bool) -> list[str]:
    # The adapter never touches the embeddings; saying so keeps PEFT from asking the Hub whether the vocabulary grew.
    trainer.model.save_pretrained(str(local), save_embedding_layers=False)
    if not state:
        return list(ADAPTER_FILES)
    torch.save(trainer.optimizer.state_dict(), local / "optimizer.pt")
    saved = {
        "step": trainer.step,
        "policy_version": trainer.policy_version,
        "version_floor": trainer.version_floor,
        "lora_config": trainer.lora_config,
        "gradient": None,
    }
    names = list(STATE_FILES)
    if gradient and trainer.gradient is not None:
        save_file({name: p.grad.detach().contiguous() for name, p in _trained(trainer) if p.grad is not None}, str(local / GRADIENT_FILE))
        saved["gradient"] = {"normalization": trainer.gradient.normalization, "active_tokens": trainer.gradient.active_tokens}
        names.append(GRADIENT_FILE)
    (local / "trainer_state.json").write_text(json.dumps(saved))
    return names


def _upload(local: Path, names: list[str], uri: str) -> list[dict]:
    files = []
    for name in names:
        storage.upload_file(local / name, storage.join(uri, name))
        files.append({"name": name, "size_bytes": (local / name).stat().st_size})
    return files


def _read_adapter(trainer: LoraTrainer, local: Path) -> None:
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    if not all((local / name).is_file() for name in ADAPTER_FILES):
        raise InvalidInput("That checkpoint has no PEFT adapter (adapter_model.safetensors and adapter_config.json).")
    config = json.loads((local / "adapter_config.json").read_text())
    if config.get("r") != trainer.rank:
        raise InvalidInput(f"That checkpoint holds a LoRA adapter of rank {config.get('r')}; this run trains rank {trainer.rank}.")
    weights = load_file(str(local / "adapter_model.safetensors"), device=str(trainer.parameters[0].device))
    expected = get_peft_model_state_dict(trainer.model, save_embedding_layers=False)
    if weights.keys() != expected.keys() or any(weights[key].shape != expected[key].shape for key in expected):
        raise InvalidInput(
            "That checkpoint's adapter does not fit this run's model: it was trained on another base model or other layers."
        )
    set_peft_model_state_dict(trainer.model, weights)


def _read_state(local: Path) -> dict | None:
    path = local / "trainer_state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _read_optimizer(trainer: LoraTrainer, local: Path) -> None:
    state = torch.load(local / "optimizer.pt", map_location=trainer.parameters[0].device, weights_only=True)
    trainer.optimizer.load_state_dict(state)


def _trained(trainer: LoraTrainer) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, parameter) for name, parameter in trainer.model.named_parameters() if parameter.requires_grad]
