"""The bake config resolved into training settings: defaults, LoRA configs, checkpoints, unhonoured fields."""

import pytest
import torch

from bakehouse_engine.bake.checkpoints import CheckpointPlan, bake_name_of
from bakehouse_engine.bake.settings import lora_config, resolve_settings
from bakehouse_engine.errors import JobFailure

DEFAULT_TEMPLATE = {  # bread-api §6.3, as the control plane resolves it
    "seed": 42, "type": "single_baker", "micro_batch_size": 2, "gradient_accumulation_steps": 1, "epochs": 1,
    "model": {"type": "bake", "baked_adapter_config": {"r": 32, "lora_alpha": 16, "target_modules": "all-linear", "lora_dropout": 0, "bias": "none"}, "disable_activation_checkpoint": False},
    "data": {"type": "single_baker", "sources": [{"type": "bake_jsonl", "max_samples": -1}], "beta": 0, "temperature": 1, "max_length": 3000, "train_eval_split": [1, 0], "cache_dir": ".cache", "dl_num_workers": 4},
    "optimizer": {"learning_rate": 0.0001},
    "scheduler": {"type": "huggingface"},
    "deepspeed": {"zero_optimization": {"stage": 3}},
    "checkpoint": [{"type": "huggingface", "save_end_of_training": True, "output_dir": "bakes/b/ckpts"}],
    "train_log_iter_interval": 1,
    "eval_interval": 0,
}


def test_the_default_template_resolves_and_names_what_it_cannot_do():
    settings = resolve_settings(DEFAULT_TEMPLATE, "cpu")
    assert (settings.seed, settings.micro_batch_size, settings.epochs, settings.learning_rate) == (42, 2, 1, 1e-4)
    assert settings.scheduler == "linear" and settings.max_length == 3000 and settings.top_k is None
    assert settings.activation_checkpointing and settings.dtype == torch.float32
    assert [note.split(":")[0] for note in settings.unhonoured] == ["data.dl_num_workers"]
    assert settings.zero_stage == 3 and settings.offload == []  # applied by sharding.py


def test_fields_that_cannot_be_honoured_are_listed_with_a_reason():
    config = {
        "model": {"dtype": "fp16", "attn_implementation": "flash_attention_2"},
        "data": {"beta": 0.5, "num_proc": 4, "eval_sources": [{"type": "bake_jsonl"}]},
        "optimizer": {"type": "sgd"},
        "scheduler": {"type": "warmup_stable_decay"},
        "wandb": {"enable": True, "project": "p"},
        "checkpoint": [{"auto_resume": True, "save_end_of_training": True}],
        "eval_interval": 10,
        "activation_checkpoint_cpu_offload": True,
    }
    settings = resolve_settings(config, "cpu")
    fields = sorted(note.split(":")[0] for note in settings.unhonoured)
    assert fields == sorted([
        "model.dtype", "model.attn_implementation flash_attention_2", "data.beta 0.5", "data.num_proc",
        "data.eval_sources / train_eval_split", "optimizer.type sgd", "scheduler.type warmup_stable_decay",
        "wandb.enable", "checkpoint.auto_resume", "eval_interval", "activation_checkpoint_cpu_offload",
    ])
    assert settings.attn_implementation == "sdpa" and settings.scheduler == "linear"
    assert all(len(note.split(": ", 1)[1]) > 10 for note in settings.unhonoured)  # each carries its reason


def test_extra_keys_select_top_k_and_warmup():
    settings = resolve_settings({"data": {"top_k": 20}, "scheduler": {"type": "cosine", "warmup_ratio": 0.1}}, "cpu")
    assert settings.top_k == 20 and settings.scheduler == "cosine" and settings.warmup_ratio == 0.1


def test_distill_baking_is_refused_rather_than_silently_baking_another_model():
    with pytest.raises(JobFailure, match="student_model_path"):
        resolve_settings({"model": {"student_model_path": "Qwen/Qwen3-0.6B"}}, "cpu")


def test_lora_configs_from_the_adapter_config_or_raw_peft_config():
    default = lora_config({})
    assert (default.r, default.lora_alpha, default.target_modules, default.lora_dropout, default.bias) == (32, 16, "all-linear", 0.0, "none")
    listed = lora_config({"baked_adapter_config": {"r": 8, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.05}})
    assert listed.r == 8 and set(listed.target_modules) == {"q_proj", "v_proj"} and listed.lora_dropout == 0.05
    raw = lora_config({"peft_config": {"peft_type": "LORA", "r": 4, "lora_alpha": 4, "target_modules": ["o_proj"], "use_rslora": True}, "baked_adapter_config": {"r": 64}})
    assert raw.r == 4 and raw.use_rslora and raw.task_type == "CAUSAL_LM"
    with pytest.raises(JobFailure, match="IA3"):
        lora_config({"peft_config": {"peft_type": "IA3"}})
    with pytest.raises(JobFailure, match="not a valid LoRA config"):
        lora_config({"peft_config": {"rank": 4}})


def test_checkpoint_plan_by_steps_epochs_and_end():
    plan = CheckpointPlan([{"save_every_n_steps": 4}, {"save_every_n_epochs": 1, "enabled": True}, {"save_end_of_training": True}], steps_per_epoch=3, total_steps=9)
    assert [step for step in range(1, 10) if plan.due(step)] == [3, 4, 6, 8, 9]
    disabled = CheckpointPlan([{"save_end_of_training": True, "enabled": False}], steps_per_epoch=3, total_steps=9)
    assert not any(disabled.due(step) for step in range(1, 10))


def test_bake_names_for_parent_folders():
    assert bake_name_of("user/repo/persona_v1/120") == "persona_v1"
    assert bake_name_of("odd name") == "odd_name"
