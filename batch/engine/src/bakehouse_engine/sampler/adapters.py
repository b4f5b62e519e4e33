"""Hot LoRA adapters: checkpoints loaded side by side into the one base model the sampler serves.

A baked checkpoint is a chain of adapters, root first, each trained on the base with its parents
merged in. LoRA deltas add up, so running the base with every adapter of the chain active at once
computes exactly what the merged model would, and one base model serves every checkpoint without
reloading. Only plain LoRA adds up that way, so other adapter kinds are refused.

Requests for different checkpoints share one batch through PEFT's mixed-batch inference: each row
names the one adapter it runs with (`BASE` for the bare base model), and every LoRA layer adds each
adapter's delta to its own rows only. One name per row means a chain of several adapters needs one
adapter that is their sum: `B·A·s` summed over the chain is the product of the adapters' B matrices
side by side and their scaled A matrices stacked, which PEFT builds as a "cat" weighted adapter of
rank Σr and scaling 1. Where that cannot express the chain (say the root's config makes the
combined adapter skip layers another adapter of the chain covers), the chain is served on its own,
with its adapters active at once, as before. Combined adapters count against the capacity and are
evicted like any other; a later batch rebuilds them. Mixed batches need unmerged adapters, which
these always are.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from bakehouse_engine.errors import JobFailure, RequestFailure
from bakehouse_engine.models import download_adapter

log = logging.getLogger(__name__)

BASE = "__base__"  # PEFT's row name for the bare base model in a mixed batch
# Relative error a combined adapter may show against its chain's summed deltas (its scaled A is
# rounded once more, to the weights' dtype); a real mismatch (a missing layer, another scaling) is
# of order 1.
_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-8}
_HALF_TOLERANCE = 2e-2
# Init schemes that only set the starting weights, which the combination overwrites; others
# (PiSSA, OLoRA, LoftQ, ...) change the base model when an adapter is injected with them.
_PLAIN_INITS = (True, False, "gaussian")
_LAYER_LIMITS = ("layers_to_transform", "layers_pattern", "exclude_modules")


def cache_key(adapter: dict) -> str:
    """What identifies an adapter's weights: its URI, and its version where the files there can be rewritten
    (a training checkpoint saved again under its name must not be served from the cache)."""
    version = adapter.get("version")
    return adapter["uri"] if version is None else f"{adapter['uri']}#{version}"


def adapter_name(key: str) -> str:
    """A PEFT adapter name for an adapter's cache key (PEFT names must not contain '.')."""
    return "a" + hashlib.sha256(key.encode()).hexdigest()[:16]


def combined_name(chain: list[dict]) -> str:
    """The PEFT adapter name for the sum of a chain's adapters."""
    return "c" + hashlib.sha256("\n".join(cache_key(adapter) for adapter in chain).encode()).hexdigest()[:16]


class HotAdapters:
    """At most `capacity` adapters stay loaded; the least recently used go first, never one in use."""

    def __init__(self, model: Any, workdir: Path, capacity: int) -> None:
        self.model = model
        self.workdir = workdir
        self.capacity = capacity
        self.peft_model: Any = None  # wraps `model` (in place) once the first adapter is loaded
        # name → what it is (a checkpoint URI, or the URIs a combined adapter sums), least recently used first
        self.loaded: OrderedDict[str, str] = OrderedDict()
        self.pinned: set[str] = set()  # what the batch being prepared needs; never unloaded
        self.uncombinable: set[str] = set()  # combined names whose chains "cat" cannot express

    def activate(self, chain: list[dict]) -> None:
        """Makes `model` run with exactly the chain's adapters (none: the bare base model).

        A chain longer than the capacity is served whole; its extra adapters go at the next activation.
        """
        names = self._load_chain(chain)
        self._unload_beyond(self.capacity, keep=set(names))
        if self.peft_model is not None:
            self.peft_model.base_model.set_adapter(names, inference_mode=True)

    @contextmanager
    def batch(self, chains: list[list[dict]]) -> Iterator[None]:
        """While a batch for these chains is prepared and generated, nothing it needs is unloaded.

        Pinned: what is loaded already and will serve the chains' rows, and whatever `row_adapter`
        hands out. A combined adapter's parts are needed only while it is built.
        """
        self.pinned = set()
        for chain in chains:
            names = [adapter_name(cache_key(adapter)) for adapter in chain]
            if len(chain) > 1 and combined_name(chain) in self.loaded:
                names = [combined_name(chain)]
            elif len(chain) > 1 and combined_name(chain) not in self.uncombinable:
                names = []
            self.pinned.update(name for name in names if name in self.loaded)
        try:
            yield
        finally:
            self.pinned = set()

    def row_adapter(self, chain: list[dict]) -> str | None:
        """Loads what the chain needs and names the one adapter its rows run with in a mixed batch.

        `BASE` for the bare base model; None when no single adapter can stand for the chain, which is
        then served on its own (`activate`). Raises RequestFailure when an adapter cannot be loaded.
        """
        if not chain:
            return BASE
        if len(chain) == 1:
            (name,) = self._load_chain(chain)
            self.pinned.add(name)
            return name
        name = combined_name(chain)
        if name in self.loaded:
            self.loaded.move_to_end(name)
            self.pinned.add(name)
            return name
        parts = self._load_chain(chain)
        if name not in self.uncombinable:
            self._unload_beyond(self.capacity - 1, keep=set(parts))
            if self._combine(chain, parts, name):
                self.loaded[name] = " + ".join(cache_key(adapter) for adapter in chain)
                self.pinned.add(name)  # the parts are not needed once combined
                return name
        self.pinned.update(parts)
        return None

    def trim(self) -> None:
        """Unloads the least recently used adapters beyond the capacity that the batch does not need."""
        self._unload_beyond(self.capacity, keep=set())

    def rows(self, names: list[str]) -> Any:
        """A context in which `model` runs row i with adapter `names[i]` (from `row_adapter`)."""
        if self.peft_model is None:
            if set(names) - {BASE}:
                raise ValueError(f"no adapter is loaded, yet rows ask for {sorted(set(names) - {BASE})}")
            return nullcontext()
        if len(set(names)) == 1:
            # One adapter for every row: the plain forward, without slicing the batch in every layer.
            self.peft_model.base_model.set_adapter([] if names[0] == BASE else [names[0]], inference_mode=True)
            return nullcontext()
        # What PeftModel.generate(adapter_names=...) wraps its call in; the sampler generates with the
        # wrapped model itself. It hooks `adapter_names` into every LoRA layer's forward, checks that
        # each name exists and refuses merged adapters (which HotAdapters never merges) and DoRA.
        return self.peft_model.base_model._enable_peft_forward_hooks(adapter_names=names)

    def _load_chain(self, chain: list[dict]) -> list[str]:
        names = [adapter_name(cache_key(adapter)) for adapter in chain]
        for adapter, name in zip(chain, names):
            if name in self.loaded:
                self.loaded.move_to_end(name)
                continue
            self._unload_beyond(self.capacity - 1, keep=set(names))
            self._load(adapter, name)
            self.loaded[name] = cache_key(adapter)
        return names

    def _unload_beyond(self, count: int, keep: set[str]) -> None:
        keep = keep | self.pinned
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

    def _combine(self, chain: list[dict], parts: list[str], name: str) -> bool:
        """Adds `name` as the sum of the loaded `parts`; False (and nothing added) where "cat" cannot express it."""
        configs = [self.peft_model.peft_config[part] for part in parts]
        if any(
            config.modules_to_save or getattr(config, "trainable_token_indices", None)
            or getattr(config, "lora_bias", False) or config.init_lora_weights not in _PLAIN_INITS
            for config in configs
        ):
            # Whole modules, token rows and LoRA biases are not LoRA products that "cat" stacks.
            return self._refuse(chain, name, "an adapter trains more than LoRA matrices")
        # The sum does not depend on the order, but the combined adapter copies the first one's config
        # (scaling, which layers it goes to): rsLoRA or layer-restricted adapters go last.
        order = sorted(range(len(parts)), key=lambda i: _restricting(configs[i]))
        try:
            self.peft_model.base_model.add_weighted_adapter(
                [parts[i] for i in order], [1.0] * len(parts), name, combination_type="cat"
            )
        except torch.OutOfMemoryError:
            self._drop(name)
            torch.cuda.empty_cache()
            log.warning("no memory to combine adapters %s; they are served on their own", _model_names(chain))
            return False
        except (ValueError, TypeError, RuntimeError) as error:
            self._drop(name)
            return self._refuse(chain, name, " ".join(str(error).split())[:200])
        # The combined adapter's new layers start in training mode, where its dropout would be live.
        self.peft_model.eval()
        mismatch = self._mismatch(parts, name)
        if mismatch:
            self._drop(name)
            return self._refuse(chain, name, mismatch)
        log.info("combined adapters %s", " + ".join(_model_names(chain)))
        return True

    def _mismatch(self, parts: list[str], name: str) -> str | None:
        """Where the combined adapter's delta differs from the sum of its parts' deltas, if anywhere.

        Compares B·(A·v)·scaling on a few random vectors in every LoRA layer: cheap, and it catches a
        combined adapter missing from a layer its parts cover, a different scaling (rsLoRA), or a
        variant forward.
        """
        from peft.tuners.lora import LoraLayer

        generator = torch.Generator().manual_seed(0)
        for module_name, module in self.peft_model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            here = [part for part in parts if _factors(module, part) is not None]
            combined = _factors(module, name)
            if combined is None or not here:
                if combined is not None or here:
                    return f"the combined adapter does not cover the same layers ({module_name})"
                continue
            if any(adapter in module.lora_variant for adapter in [name, *here]):
                return f"a LoRA variant in {module_name}"
            a, b = combined
            probe = torch.randn(a.shape[1], 4, generator=generator, dtype=torch.float32).to(a.device)
            want = sum(_apply(module, part, probe) for part in here)
            got = _apply(module, name, probe)
            tolerance = _TOLERANCE.get(a.dtype, _HALF_TOLERANCE)
            if not bool(torch.isfinite(got).all()) or (got - want).norm() > tolerance * want.norm() + 1e-12:
                return f"the combined delta differs from the sum in {module_name}"
        return None

    def _refuse(self, chain: list[dict], name: str, reason: str) -> bool:
        log.info("adapters %s cannot be combined (%s); they are served on their own", _model_names(chain), reason)
        self.uncombinable.add(name)
        return False

    def _drop(self, name: str) -> None:
        if name in self.peft_model.peft_config:
            self.peft_model.delete_adapter(name)


def _model_names(chain: list[dict]) -> list[str]:
    return [adapter["model_name"] for adapter in chain]


def _restricting(config: Any) -> tuple[bool, bool]:
    """How far a config, copied to a combined adapter, would keep it from standing for its chain."""
    return (
        bool(getattr(config, "use_rslora", False)),
        any(getattr(config, key, None) is not None for key in _LAYER_LIMITS),
    )


def _factors(module: Any, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """An adapter's A (r × in) and B (out × r) in a LoRA layer, flattened to matrices, if it has them there."""
    if name in module.lora_A:
        return module.lora_A[name].weight.flatten(1), module.lora_B[name].weight.flatten(1)
    if name in module.lora_embedding_A:
        return module.lora_embedding_A[name], module.lora_embedding_B[name]
    return None


def _apply(module: Any, name: str, probe: torch.Tensor) -> torch.Tensor:
    a, b = _factors(module, name)
    return b.float() @ (a.float() @ probe) * module.scaling[name]
