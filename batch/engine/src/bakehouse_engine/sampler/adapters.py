"""Hot LoRA adapters: checkpoints loaded side by side into the one base model the sampler serves.

A baked checkpoint is a chain of adapters, root first, each trained on the base with its parents
merged in. LoRA deltas add up, so running the base with every adapter of the chain active at once
computes exactly what the merged model would, and one base model serves every checkpoint without
reloading. Only plain LoRA adds up that way, so other adapter kinds are refused.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

from bakehouse_engine.errors import JobFailure, RequestFailure
from bakehouse_engine.models import download_adapter

log = logging.getLogger(__name__)


def adapter_name(uri: str) -> str:
    """A PEFT adapter name for a checkpoint URI (PEFT names must not contain '.')."""
    return "a" + hashlib.sha256(uri.encode()).hexdigest()[:16]


class HotAdapters:
    """At most `capacity` adapters stay loaded; the least recently used go first, never one in use."""

    def __init__(self, model: Any, workdir: Path, capacity: int) -> None:
        self.model = model
        self.workdir = workdir
        self.capacity = capacity
        self.peft_model: Any = None  # wraps `model` (in place) once the first adapter is loaded
        self.loaded: OrderedDict[str, str] = OrderedDict()  # name → uri, least recently used first

    def activate(self, chain: list[dict]) -> None:
        """Makes `model` run with exactly the chain's adapters (none: the bare base model).

        A chain longer than the capacity is served whole; its extra adapters go at the next activation.
        """
        names = [adapter_name(adapter["uri"]) for adapter in chain]
        for adapter, name in zip(chain, names):
            if name in self.loaded:
                self.loaded.move_to_end(name)
                continue
            self._unload_beyond(self.capacity - 1, keep=set(names))
            self._load(adapter, name)
            self.loaded[name] = adapter["uri"]
        self._unload_beyond(self.capacity, keep=set(names))
        if self.peft_model is not None:
            self.peft_model.base_model.set_adapter(names, inference_mode=True)

    def _unload_beyond(self, count: int, keep: set[str]) -> None:
        for name in [name for name in self.loaded if name not in keep][: max(0, len(self.loaded) - count)]:
            log.info("unloading adapter %s", self.loaded[name])
            self.peft_model.delete_adapter(name)
            del self.loaded[name]
            shutil.rmtree(self.workdir / name, ignore_errors=True)

    def _load(self, adapter: dict, name: str) -> None:
        from peft import PeftConfig, PeftModel

        log.info("loading adapter %s (%s)", adapter["model_name"], adapter["uri"])
        try:
            local = download_adapter(adapter["uri"], self.workdir / name)
            config = PeftConfig.from_pretrained(str(local))
            if config.peft_type != "LORA" or getattr(config, "use_dora", False):
                raise ValueError("it is not a plain LoRA adapter, whose deltas add up")
            if self.peft_model is None:
                # Wrapping injects LoRA layers into `model` itself, which the sampler keeps generating with.
                self.peft_model = PeftModel(self.model, config, adapter_name=name)
            self.peft_model.load_adapter(str(local), adapter_name=name, torch_device=str(self.model.device))
        except (JobFailure, ValueError, KeyError, TypeError, RuntimeError) as error:  # RuntimeError: shapes, OOM
            if self.peft_model is not None and name in self.peft_model.peft_config:
                self.peft_model.delete_adapter(name)
            shutil.rmtree(self.workdir / name, ignore_errors=True)
            reason = " ".join(str(error).split())  # torch's load errors span many lines
            raise RequestFailure(f"Adapter {adapter['model_name']} could not be loaded: {reason[:400]}") from error
