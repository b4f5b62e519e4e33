"""Base models, adapter chains and chat rendering shared by rollouts and bakes.

A ModelSpec (job-spec.ts) names a base model and the PEFT adapters to merge into it, root first:
a rollout from a baked checkpoint, or a sequential bake whose parent is another bake. Merging
(rather than stacking live adapters) makes the result an ordinary model, so a bake's new adapter is
the only one PEFT sees and `disable_adapter()` yields exactly the parent model as teacher.

Base model names resolve, in order, to: an existing absolute path; `$BAKEHOUSE_MODEL_CACHE/<name>`
(default `~/.cache/bakehouse/models/<name>`); the toy model `bakehouse/toy-instruct`, built on first
use; and a Hugging Face Hub download into that cache, only when `BAKEHOUSE_HUB_ACCESS=1` (the
deployment has network access and, for gated models, `HF_TOKEN`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from bakehouse_engine import storage
from bakehouse_engine.errors import JobFailure

TOY_MODEL_NAME = "bakehouse/toy-instruct"

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def model_cache_dir() -> Path:
    return Path(os.environ.get("BAKEHOUSE_MODEL_CACHE") or Path.home() / ".cache" / "bakehouse" / "models")


def hub_access_enabled() -> bool:
    return os.environ.get("BAKEHOUSE_HUB_ACCESS") == "1"


def resolve_model_path(name: str) -> Path:
    """The local directory holding base model `name` in transformers format (see the module doc)."""
    as_path = Path(name)
    if as_path.is_absolute():
        if (as_path / "config.json").is_file():
            return as_path
        raise JobFailure(f"Base model path {name} has no config.json; point it at a transformers model directory.")
    cached = model_cache_dir() / name
    if (cached / "config.json").is_file():
        return cached
    if name == TOY_MODEL_NAME:
        from bakehouse_engine.toy import ensure_toy_model

        return ensure_toy_model()
    if not hub_access_enabled():
        raise JobFailure(
            f"Model {name} is not in the local model cache ({cached}) and Hugging Face Hub access is off; "
            "put the model there or run the engine with BAKEHOUSE_HUB_ACCESS=1."
        )
    return _download_from_hub(name, cached)


def _download_from_hub(name: str, into: Path) -> Path:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id=name, local_dir=into)
    except Exception as error:  # network, auth and missing-repo errors all end the job the same way
        raise JobFailure(f"Could not download model {name} from the Hugging Face Hub: {error}") from error
    return into


def pick_device() -> str:
    """`BAKEHOUSE_DEVICE` if set, else the first CUDA device, else the CPU."""
    return os.environ.get("BAKEHOUSE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str | None, device: str) -> tuple[torch.dtype, str | None]:
    """The torch dtype for a config's `bf16 | fp16 | fp32 | None`, and a note when it had to change.

    None means bf16 on an accelerator and fp32 on the CPU. fp16 on the CPU becomes fp32: CPU fp16
    matmuls are slow or missing and its range overflows in training without a loss scaler.
    """
    if dtype is None:
        return (torch.bfloat16 if device != "cpu" else torch.float32), None
    if dtype not in _DTYPES:
        raise JobFailure(f"Unknown model dtype {dtype!r}; use bf16, fp16 or fp32.")
    if dtype == "fp16" and device == "cpu":
        return torch.float32, "model.dtype: fp16 is not supported on the CPU; trained in fp32"
    return _DTYPES[dtype], None


def load_model(
    spec_model: dict,
    dtype: str | None,
    device: str,
    adapters_dir: Path | None = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Loads the ModelSpec's base model and tokenizer and merges its adapters into it, root first.

    `adapters_dir` keeps the downloaded adapters (as `<index>/`) for callers that reuse them, such as
    a bake's checkpoint archive; without it they go to a temporary directory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype, note = resolve_dtype(dtype, device)
    if note:
        print(f"bakehouse-engine: {note}", file=sys.stderr)
    path = resolve_model_path(spec_model["base_model"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **extra)
    model.to(device)
    adapters = spec_model.get("adapters") or []
    if adapters:
        if adapters_dir is not None:
            model = merge_adapters(model, adapters, adapters_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="bakehouse-adapters-") as scratch:
                model = merge_adapters(model, adapters, Path(scratch))
    model.eval()
    return model, tokenizer


def download_adapter(uri: str, into: Path) -> Path:
    storage.download_dir(uri, into)
    if not (into / "adapter_config.json").is_file():
        raise JobFailure(f"The adapter at {uri} has no adapter_config.json; it is not a PEFT adapter.")
    return into


def merge_adapters(model: Any, adapters: list[dict], workdir: Path) -> Any:
    """Downloads each adapter into `workdir/<index>/` and merges it into the model, in order."""
    from peft import PeftModel

    for index, adapter in enumerate(adapters):
        local = download_adapter(adapter["uri"], workdir / str(index))
        try:
            model = PeftModel.from_pretrained(model, str(local)).merge_and_unload()
        except (ValueError, KeyError, RuntimeError) as error:
            raise JobFailure(f"Adapter {adapter['model_name']} does not fit the base model: {error}") from error
        # merge_and_unload leaves the adapter's config on the model; a later adapter (or a bake's
        # new LoRA) would otherwise be added beside a ghost of this one.
        model.__dict__.pop("peft_config", None)
    return model


def render_chat(
    tokenizer: Any,
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
) -> str:
    """Renders messages with the tokenizer's chat template, the same way for teacher and student."""
    if not getattr(tokenizer, "chat_template", None):
        raise JobFailure("The model's tokenizer has no chat template, so chat messages cannot be rendered for it.")
    return tokenizer.apply_chat_template(
        messages,
        tools=tools or None,
        add_generation_prompt=add_generation_prompt,
        tokenize=False,
        **template_kwargs,
    )


def model_display_name(spec_model: dict) -> str:
    """The name a rollout line reports: the newest adapter's checkpoint name, else the base model."""
    adapters = spec_model.get("adapters") or []
    return adapters[-1]["model_name"] if adapters else spec_model["base_model"]


def context_length(model: Any) -> int:
    """The model's trained context, used to cap unset generation lengths."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 4096
