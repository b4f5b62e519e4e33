"""When a bake saves checkpoints, and how: `ckpts/<step>/` and `ckpts/<step>.tar.gz` (bread-api §12.2).

`ckpts/<step>/` is a standard PEFT adapter (adapter_config.json with `base_model_name_or_path` = the
base model's catalog name, adapter_model.safetensors). The archive holds the same files at its root,
`manifest.json` {base_model, model_name, checkpoint, parents}, and for a sequential bake each
ancestor's adapter under `parents/<index>_<bake_name>/`, in the order they are merged, so the model
can be rebuilt offline: base, then each parent merged in turn, then this adapter.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakehouse_engine import storage
from bakehouse_engine.bake.ranks import Ranks
from bakehouse_engine.errors import disk_full_is_a_failure

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


@dataclass
class ParentAdapter:
    model_name: str
    local_dir: Path


class CheckpointPlan:
    """The steps at which the config's `checkpoint[]` entries ask for a save."""

    def __init__(self, entries: list[dict], steps_per_epoch: int, total_steps: int) -> None:
        self.entries = [entry for entry in entries if entry.get("enabled") is not False]
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps

    def due(self, step: int) -> bool:
        return any(self._entry_due(entry, step) for entry in self.entries)

    def _entry_due(self, entry: dict, step: int) -> bool:
        every_steps = entry.get("save_every_n_steps") or 0
        if every_steps and step % every_steps == 0:
            return True
        every_epochs = entry.get("save_every_n_epochs") or 0
        if every_epochs and step % self.steps_per_epoch == 0 and (step // self.steps_per_epoch) % every_epochs == 0:
            return True
        return bool(entry.get("save_end_of_training")) and step == self.total_steps


def bake_name_of(model_name: str) -> str:
    """`user/repo/bake/step` → `bake`; other names are made safe for a folder name."""
    parts = model_name.split("/")
    name = parts[2] if len(parts) == 4 else model_name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class CheckpointWriter:
    """Saves the trained adapter at a step and publishes its folder and archive under the output prefix."""

    def __init__(
        self, output_uri: str, workdir: Path, base_model: str, model_name_prefix: str, parents: list[ParentAdapter]
    ) -> None:
        self.output_uri = output_uri
        self.workdir = workdir / "ckpts"
        self.base_model = base_model
        self.model_name_prefix = model_name_prefix
        self.parents = parents
        self.steps: list[int] = []

    def save(self, peft_model: Any, step: int, state: dict | None = None) -> None:
        """`state`: the adapter's weights gathered whole, for a model sharded across processes."""
        with disk_full_is_a_failure(f"writing checkpoint {step}", "bake"):
            self._save(peft_model, step, state)
        self.steps.append(step)

    def _save(self, peft_model: Any, step: int, state: dict | None) -> None:
        local = self.workdir / str(step)
        peft_model.save_pretrained(str(local), state_dict=state)
        (local / "README.md").unlink(missing_ok=True)  # PEFT's model card template, not part of the adapter
        # PEFT records the local path the base was loaded from. The catalog name goes in afterwards:
        # set before saving, PEFT would look the name up on the Hub.
        config_file = local / "adapter_config.json"
        adapter_config = json.loads(config_file.read_text())
        adapter_config["base_model_name_or_path"] = self.base_model
        config_file.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
        storage.upload_dir(local, storage.join(self.output_uri, "ckpts", f"{step}/"))
        archive = self.workdir / f"{step}.tar.gz"
        self.write_archive(local, step, archive)
        storage.upload_file(archive, storage.join(self.output_uri, "ckpts", f"{step}.tar.gz"))

    def manifest(self, step: int) -> dict:
        return {
            "base_model": self.base_model,
            "model_name": f"{self.model_name_prefix}/{step}",
            "checkpoint": step,
            "parents": [parent.model_name for parent in self.parents],
        }

    def write_archive(self, adapter_dir: Path, step: int, archive: Path) -> None:
        manifest = self.workdir / f"{step}.manifest.json"
        manifest.write_text(json.dumps(self.manifest(step), indent=2) + "\n")
        with tarfile.open(archive, "w:gz") as tar:
            for name in ADAPTER_FILES:
                tar.add(adapter_dir / name, arcname=name)
            tar.add(manifest, arcname="manifest.json")
            for index, parent in enumerate(self.parents):
                folder = f"parents/{index}_{bake_name_of(parent.model_name)}"
                for name in ADAPTER_FILES:
                    if (parent.local_dir / name).is_file():
                        tar.add(parent.local_dir / name, arcname=f"{folder}/{name}")


class GatheringWriter:
    """A distributed bake's writer, on every process: they all take part in gathering the sharded LoRA
    weights whole (full state dict of the trainable parameters only), and the main process saves them
    as a standard PEFT adapter with its CheckpointWriter (`writer`, None on the other processes)."""

    def __init__(self, ranks: Ranks, writer: CheckpointWriter | None, peft_model: Any) -> None:
        self.ranks = ranks
        self.writer = writer
        # Named before training: FSDP's unsharded views after a no-grad forward do not keep requires_grad.
        self.names = {name for name, parameter in peft_model.named_parameters() if parameter.requires_grad}
        self.steps: list[int] = []

    def save(self, peft_model: Any, step: int) -> None:
        state = self.ranks.full_state(peft_model, self.names)
        if self.writer is not None:
            self.writer.save(peft_model, step, state)
        self.steps.append(step)
