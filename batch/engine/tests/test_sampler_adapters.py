"""Hot adapters: a chain's adapters active together equal the chain merged; least recently used go first."""

from __future__ import annotations

import pytest
import torch

from bakehouse_engine.errors import RequestFailure
from bakehouse_engine.models import load_model
from bakehouse_engine.sampler.adapters import HotAdapters, adapter_name
from job_harness import TINY_MODEL, tiny_model, tiny_model_cache  # noqa: F401 — fixtures
from test_models import logits_of, save_random_adapter


@pytest.fixture
def adapters(tiny_model, tiny_model_cache, tmp_path) -> dict[str, dict]:
    base_dir = tiny_model_cache / TINY_MODEL
    return {
        name: {"model_name": f"u/r/{name}/1", "uri": save_random_adapter(base_dir, tmp_path / name, seed).as_uri() + "/"}
        for seed, name in enumerate(["a", "b", "c"], start=1)
    }


def base_model():
    return load_model({"base_model": TINY_MODEL, "adapters": []}, None, "cpu")


def merged_logits(chain: list[dict]) -> torch.Tensor:
    model, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": chain}, None, "cpu")
    return logits_of(model, tokenizer)


def test_a_chain_active_at_once_computes_what_the_merged_chain_does(adapters, tmp_path):
    model, tokenizer = base_model()
    plain = logits_of(model, tokenizer)
    hot = HotAdapters(model, tmp_path / "hot", capacity=4)
    for chain in ([adapters["a"]], [adapters["a"], adapters["b"]], [adapters["c"], adapters["a"], adapters["b"]], []):
        hot.activate(chain)
        expected = merged_logits(chain) if chain else plain
        assert torch.allclose(logits_of(model, tokenizer), expected, atol=1e-5), [a["model_name"] for a in chain]
    assert not torch.allclose(merged_logits([adapters["a"]]), plain, atol=1e-3)


def test_the_least_recently_used_adapter_is_unloaded_but_never_one_in_use(adapters, tmp_path):
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=2)
    a, b, c = (adapters[name] for name in "abc")
    hot.activate([a])
    hot.activate([b])
    hot.activate([a])  # a is now more recently used than b
    hot.activate([c])
    assert list(hot.loaded) == [adapter_name(a["uri"]), adapter_name(c["uri"])]
    assert set(hot.peft_model.peft_config) == set(hot.loaded)
    assert not (tmp_path / "hot" / adapter_name(b["uri"])).exists()

    hot.activate([a, b, c])  # a chain longer than the capacity is served whole
    assert torch.allclose(logits_of(model, tokenizer), merged_logits([a, b, c]), atol=1e-5)
    hot.activate([b])
    assert list(hot.loaded) == [adapter_name(c["uri"]), adapter_name(b["uri"])]


@pytest.mark.filterwarnings("ignore:Could not find a config file")
def test_an_adapter_that_does_not_fit_leaves_the_model_as_it_was(adapters, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2))
    get_peft_model(other, LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False)).save_pretrained(tmp_path / "other")
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=2)
    hot.activate([adapters["a"]])
    with pytest.raises(RequestFailure, match="u/r/other/1 could not be loaded: .*size mismatch"):
        hot.activate([{"model_name": "u/r/other/1", "uri": (tmp_path / "other").as_uri() + "/"}])
    assert list(hot.peft_model.peft_config) == [adapter_name(adapters["a"]["uri"])]
    hot.activate([adapters["a"]])
    assert torch.allclose(logits_of(model, tokenizer), merged_logits([adapters["a"]]), atol=1e-5)
