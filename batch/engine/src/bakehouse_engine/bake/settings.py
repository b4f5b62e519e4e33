"""The bake config (bread-api §6.2) resolved into training settings, with what cannot be honoured.

Unset fields take the `default` bake template's values (bread-api §6.3). Two keys beyond the API's
documented ones are read from the loose config objects:
- `data.top_k` (int): train on the teacher's top-K tokens plus a tail bucket (baking.md §2.5) instead
  of the full vocabulary; unset or 0 = full vocabulary.
- `scheduler.warmup_steps` (int) or `scheduler.warmup_ratio` (fraction of all steps): LR warmup,
  default none.

Fields that this engine accepts but cannot apply (Weights & Biases, data-loader workers, …) are
collected in `unhonoured`, each with the reason, for result.json. The `deepspeed` block is mapped
onto PyTorch FSDP (sharding.py); how each of its fields was applied goes to `applied`, once the
number of processes is known.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import torch

from bakehouse_engine.errors import JobFailure
from bakehouse_engine.models import resolve_dtype

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")
ADAM_NAMES = ("adam", "adamw", "adamw_torch", "torch_adamw", "adamw_torch_fused")
ATTENTION = ("sdpa", "eager", "flash_attention_2")
# HF Trainer's default max_grad_norm: a bad batch should not wreck a short bake.
MAX_GRAD_NORM = 1.0


@dataclass
class BakeSettings:
    seed: int = 42
    epochs: int = 1
    micro_batch_size: int = 2
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    dtype_name: str | None = None
    dtype: torch.dtype = torch.float32
    attn_implementation: str | None = None
    activation_checkpointing: bool = True
    activation_cpu_offload: bool = False
    max_length: int = 3000
    temperature: float = 1.0
    top_k: int | None = None
    log_interval: int = 1
    checkpoints: list[dict] = field(default_factory=list)
    # From the deepspeed block (sharding.py): ZeRO stage and whether params/optimizer go to CPU memory.
    zero_stage: int | None = None
    offload: list[str] = field(default_factory=list)  # the offload fields the config turned on
    unhonoured: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


def _get(config: dict, key: str) -> dict:
    return config.get(key) or {}


def resolve_settings(config: dict, device: str) -> BakeSettings:
    settings = BakeSettings()
    note = settings.unhonoured.append
    for key in ("seed", "epochs", "micro_batch_size", "gradient_accumulation_steps"):
        if config.get(key) is not None:
            setattr(settings, key, int(config[key]))
    if config.get("train_log_iter_interval"):
        settings.log_interval = int(config["train_log_iter_interval"])
    _resolve_model(_get(config, "model"), device, settings)
    _resolve_data(_get(config, "data"), settings)
    _resolve_optimizer(_get(config, "optimizer"), _get(config, "scheduler"), settings)
    settings.checkpoints = [entry for entry in (config.get("checkpoint") or []) if entry]
    for entry in settings.checkpoints:
        if entry.get("auto_resume"):
            note("checkpoint.auto_resume: a bake always starts from its starting model")
        if entry.get("type") not in (None, "huggingface"):
            note(f"checkpoint.type {entry['type']}: checkpoints are saved as PEFT (huggingface) adapters")
    if config.get("eval_interval"):
        note("eval_interval: evaluation during training is not implemented")
    zero = _get(_get(config, "deepspeed"), "zero_optimization")
    if zero.get("stage") is not None:
        settings.zero_stage = int(zero["stage"])
    settings.offload = [key for key in ("offload_param", "offload_optimizer") if _offloads(zero.get(key))]
    if _get(config, "wandb").get("enable"):
        note("wandb.enable: the engine does not report to Weights & Biases; metrics are in metrics.jsonl")
    if config.get("activation_checkpoint_cpu_offload"):
        if device == "cpu":
            note("activation_checkpoint_cpu_offload: activations are already in CPU memory")
        else:
            settings.activation_cpu_offload = True
    return settings


def _offloads(entry: Any) -> bool:
    """DeepSpeed's `offload_*: {device: cpu | nvme | none}` (or a bare true) asks for offload."""
    if isinstance(entry, dict):
        return str(entry.get("device") or "cpu").lower() != "none"
    return bool(entry)


def _resolve_model(model: dict, device: str, settings: BakeSettings) -> None:
    if model.get("student_model_path"):
        raise JobFailure(
            "Distill-baking (model.student_model_path) is not supported by this engine; "
            "remove it to bake into the starting model."
        )
    settings.dtype_name = model.get("dtype")
    settings.dtype, dtype_note = resolve_dtype(settings.dtype_name, device)
    if dtype_note:
        settings.unhonoured.append(dtype_note)
    attention = model.get("attn_implementation")
    if attention == "flash_attention_2" and not _flash_attention_available(device):
        settings.unhonoured.append("model.attn_implementation flash_attention_2: flash-attn is not available here; used sdpa")
        attention = "sdpa"
    elif attention is not None and attention not in ATTENTION:
        settings.unhonoured.append(f"model.attn_implementation {attention}: unknown; used the model's default")
        attention = None
    settings.attn_implementation = attention
    settings.activation_checkpointing = not model.get("disable_activation_checkpoint")


def _flash_attention_available(device: str) -> bool:
    return device != "cpu" and importlib.util.find_spec("flash_attn") is not None


def _resolve_data(data: dict, settings: BakeSettings) -> None:
    note = settings.unhonoured.append
    if data.get("max_length"):
        settings.max_length = int(data["max_length"])
    if data.get("temperature"):
        settings.temperature = float(data["temperature"])
    if data.get("top_k"):
        settings.top_k = int(data["top_k"])
    if data.get("beta"):
        note(f"data.beta {data['beta']}: only forward KL (beta 0) is implemented; trained with forward KL")
    if data.get("dl_num_workers"):
        note("data.dl_num_workers: trajectories are tokenised up front; there are no loader workers")
    if (data.get("num_proc") or 1) > 1:
        note("data.num_proc: tokenisation runs in one process")
    if data.get("use_data_cache") or data.get("cache_fs_type") == "shared":
        note("data.use_data_cache / cache_fs_type: tokenised data is not cached between bakes")
    split = data.get("train_eval_split")
    if data.get("eval_sources") or (split and split[1]):
        note("data.eval_sources / train_eval_split: held-out evaluation is not implemented; all data trains")
    sampling = ("sample_ratio", "sample_count")
    for source in data.get("sources") or []:
        if any(source.get(key) is not None for key in sampling) or (source.get("max_samples") or -1) != -1:
            note("data.sources sampling: the bake trains on the collated datasets (total_trajectories)")
            break


def _resolve_optimizer(optimizer: dict, scheduler: dict, settings: BakeSettings) -> None:
    note = settings.unhonoured.append
    kind = optimizer.get("type")
    if kind is not None and kind.lower() not in ADAM_NAMES:
        note(f"optimizer.type {kind}: only AdamW is available; used AdamW")
    if optimizer.get("learning_rate"):
        settings.learning_rate = float(optimizer["learning_rate"])
    if optimizer.get("weight_decay") is not None:
        settings.weight_decay = float(optimizer["weight_decay"])
    if optimizer.get("betas"):
        settings.betas = (float(optimizer["betas"][0]), float(optimizer["betas"][1]))
    kind = scheduler.get("type") or "huggingface"
    if kind == "huggingface":
        kind = "linear"  # the HF Trainer default
    if kind not in SCHEDULERS:
        note(f"scheduler.type {kind}: unknown; used linear decay")
        kind = "linear"
    settings.scheduler = kind
    if scheduler.get("lr") is not None:
        note("scheduler.lr: deprecated; optimizer.learning_rate sets the learning rate")
    settings.warmup_steps = int(scheduler.get("warmup_steps") or 0)
    settings.warmup_ratio = float(scheduler.get("warmup_ratio") or 0.0)


def lora_config(model: dict) -> Any:
    """A PEFT LoraConfig from `model.peft_config` (raw passthrough) or `model.baked_adapter_config`."""
    from peft import LoraConfig

    raw = model.get("peft_config")
    if raw:
        raw = {key: value for key, value in raw.items() if value is not None}
        peft_type = str(raw.pop("peft_type", "LORA")).upper()
        if peft_type != "LORA":
            raise JobFailure(f"model.peft_config peft_type {peft_type} is not supported; bakes train LoRA adapters.")
        raw.setdefault("task_type", "CAUSAL_LM")
        try:
            return LoraConfig(**raw)
        except (TypeError, ValueError) as error:
            raise JobFailure(f"model.peft_config is not a valid LoRA config: {error}") from error
    adapter = model.get("baked_adapter_config") or {}
    return LoraConfig(
        r=int(adapter.get("r") or 32),
        lora_alpha=adapter.get("lora_alpha") or 16,
        target_modules=adapter.get("target_modules") or "all-linear",
        lora_dropout=float(adapter.get("lora_dropout") or 0.0),
        bias=adapter.get("bias") or "none",
        task_type="CAUSAL_LM",
    )
