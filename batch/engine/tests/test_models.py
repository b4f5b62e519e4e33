"""Base model resolution, adapter chains and chat rendering."""

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from bakehouse_engine.errors import JobFailure
from bakehouse_engine.models import load_model, render_chat, resolve_dtype, resolve_model_path
from job_harness import tiny_model, tiny_model_cache  # noqa: F401 — fixtures


def save_random_adapter(base_dir: Path, out_dir: Path, seed: int) -> Path:
    """A LoRA adapter with non-zero B, so merging it visibly changes the model."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft_model.save_pretrained(out_dir)
    return out_dir


def logits_of(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("Tell me about the sea.", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def test_a_name_resolves_through_the_model_cache(tiny_model, tiny_model_cache):
    assert resolve_model_path(tiny_model) == tiny_model_cache / tiny_model
    assert resolve_model_path(str(tiny_model_cache / tiny_model)) == tiny_model_cache / tiny_model


def test_an_unknown_model_fails_with_a_sentence_when_hub_access_is_off(tiny_model, monkeypatch):
    monkeypatch.delenv("BAKEHOUSE_HUB_ACCESS", raising=False)
    with pytest.raises(JobFailure, match="Qwen/Qwen3-8B is not in the local model cache .* Hub access is off"):
        resolve_model_path("Qwen/Qwen3-8B")


def test_adapters_are_merged_into_the_base_in_order(tiny_model, tiny_model_cache, tmp_path):
    base_dir = tiny_model_cache / tiny_model
    first = save_random_adapter(base_dir, tmp_path / "first", seed=1)
    second = save_random_adapter(base_dir, tmp_path / "second", seed=2)
    spec = {
        "base_model": tiny_model,
        "adapters": [
            {"model_name": "u/r/first/5", "uri": first.as_uri() + "/"},
            {"model_name": "u/r/second/9", "uri": second.as_uri() + "/"},
        ],
    }
    merged, tokenizer = load_model(spec, "fp32", "cpu", adapters_dir=tmp_path / "downloaded")

    expected = AutoModelForCausalLM.from_pretrained(base_dir)
    expected = PeftModel.from_pretrained(expected, first).merge_and_unload()
    del expected.peft_config
    expected = PeftModel.from_pretrained(expected, second).merge_and_unload()
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    assert torch.allclose(logits_of(merged, tokenizer), logits_of(expected, tokenizer), atol=1e-5)
    assert not torch.allclose(logits_of(merged, tokenizer), logits_of(base, tokenizer), atol=1e-3)
    assert (tmp_path / "downloaded" / "0" / "adapter_config.json").is_file()
    assert (tmp_path / "downloaded" / "1" / "adapter_model.safetensors").is_file()


def test_a_missing_adapter_fails_the_job(tiny_model, tmp_path):
    spec = {"base_model": tiny_model, "adapters": [{"model_name": "u/r/b/1", "uri": (tmp_path / "nope").as_uri() + "/"}]}
    with pytest.raises(JobFailure):
        load_model(spec, None, "cpu")


def test_dtypes_and_the_cpu_fallback_for_fp16():
    assert resolve_dtype(None, "cpu") == (torch.float32, None)
    assert resolve_dtype(None, "cuda") == (torch.bfloat16, None)
    assert resolve_dtype("bf16", "cpu") == (torch.bfloat16, None)
    dtype, note = resolve_dtype("fp16", "cpu")
    assert dtype == torch.float32 and "fp16" in note
    assert resolve_dtype("fp16", "cuda") == (torch.float16, None)


def test_render_chat_uses_the_template_with_tools_and_kwargs(tiny_model, tiny_model_cache):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_cache / tiny_model)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = render_chat(tokenizer, messages, tools=[{"type": "function", "function": {"name": "lookup"}}])
    assert text.startswith("<|im_start|>system\nTools: ")
    assert '"lookup"' in text
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert not render_chat(tokenizer, messages, add_generation_prompt=False).endswith("assistant\n")
