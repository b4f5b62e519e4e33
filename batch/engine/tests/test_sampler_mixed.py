"""Mixed batches: rows for different adapter chains in one forward, a chain as one combined adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM
from transformers.generation.utils import GenerationMixin

from bakehouse_engine.models import load_model
from bakehouse_engine.sampler import Sampler
from bakehouse_engine.sampler.adapters import BASE, HotAdapters, adapter_name, combined_name
from bakehouse_engine.sampler.generation import ReplyGenerator
from memory_outbox import MemoryPoster
from job_harness import TINY_MODEL, tiny_model, tiny_model_cache  # noqa: F401 — fixtures
from test_models import logits_of
from test_sampler import BREAD, SEA, chat, greedy_reply
from test_sampler_adapters import base_model, merged_logits

pytestmark = pytest.mark.filterwarnings("ignore:Adapter .* was active which is now deleted")

# Different ranks, alphas and target modules; the root's dropout must not act at inference.
ADAPTERS = {
    "a": dict(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.3),
    "b": dict(r=2, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]),
    "c": dict(r=8, lora_alpha=4, target_modules="all-linear"),
    # rsLoRA: a combined adapter with this config would have a scaling of sqrt(Σr), not 1.
    "rs": dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True),
    "rs2": dict(r=2, lora_alpha=4, target_modules="all-linear", use_rslora=True),
    # On layer 0 only: with b, whose config spans both layers, "cat" finds layer 1's o_proj in the
    # union of targets but no adapter of the chain there.
    "layer0": dict(r=4, lora_alpha=8, target_modules=["q_proj", "o_proj"], layers_to_transform=[0]),
}


@pytest.fixture(scope="module")
def adapters(tiny_model_cache, tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("mixed-adapters")
    chains = {}
    for seed, (name, config) in enumerate(ADAPTERS.items(), start=1):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_cache / TINY_MODEL)
        get_peft_model(model, LoraConfig(init_lora_weights=False, **config)).save_pretrained(root / name)
        chains[name] = {"model_name": f"u/r/{name}/1", "uri": (root / name).as_uri() + "/"}
    return chains


def row_logits(model, tokenizer, hot: HotAdapters, names: list[str]) -> torch.Tensor:
    ids = tokenizer(SEA, return_tensors="pt").input_ids.repeat(len(names), 1)
    with torch.no_grad(), hot.rows(names):
        return model(ids).logits


def test_a_combined_adapter_is_exactly_the_sum_of_its_chain(tiny_model, adapters, tmp_path):
    a, b, c = (adapters[name] for name in "abc")
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=8)
    # [a, b] last: nothing after it resets training mode. [rs, a] combines on a's config.
    chains = [[], [a], [c], [b, a], [adapters["rs"], a], [a, b]]
    with hot.batch(chains):
        names = [hot.row_adapter(chain) for chain in chains]
    assert names[:3] == [BASE, adapter_name(a["uri"]), adapter_name(c["uri"])]
    assert names[3:] == [combined_name(chain) for chain in chains[3:]]

    # Per layer: B·A·scaling of the combined adapter is the sum over the chain (rank Σr, scaling 1).
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    parts = [adapter_name(a["uri"]), adapter_name(b["uri"])]
    for module in layers:
        assert module.scaling[names[-1]] == 1.0 and module.r[names[-1]] == 6
        expected = sum(module.get_delta_weight(part) for part in parts if part in module.lora_A)
        assert torch.allclose(module.get_delta_weight(names[-1]), expected, atol=1e-6)
    assert sum(parts[1] in module.lora_A for module in layers) < len(layers)  # b targets fewer modules

    # One forward, every row as its merged model; the combined adapter's dropout is off.
    logits = row_logits(model, tokenizer, hot, names)
    for row, chain in enumerate(chains):
        assert torch.allclose(logits[row : row + 1], merged_logits(chain), atol=1e-5), row
    assert torch.equal(row_logits(model, tokenizer, hot, names), logits)


@pytest.mark.parametrize("names", [("rs", "rs2"), ("layer0", "b")])
def test_a_chain_cat_cannot_express_is_served_on_its_own(tiny_model, adapters, tmp_path, names):
    chain = [adapters[name] for name in names]
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=8)
    with hot.batch([chain]):
        assert hot.row_adapter(chain) is None
        assert hot.pinned == {adapter_name(adapter["uri"]) for adapter in chain}
    assert combined_name(chain) not in hot.peft_model.peft_config and combined_name(chain) in hot.uncombinable
    hot.activate(chain)
    assert torch.allclose(logits_of(model, tokenizer), merged_logits(chain), atol=1e-5)


def test_combined_adapters_are_evicted_like_others_and_rebuilt(tiny_model, adapters, tmp_path):
    a, b, c = (adapters[name] for name in "abc")
    name_a, name_b, name_c = (adapter_name(adapter["uri"]) for adapter in (a, b, c))
    name_ab = combined_name([a, b])
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=2)

    def batch(*chains: list[dict]) -> list[str]:
        with hot.batch(list(chains)):
            names = [hot.row_adapter(chain) for chain in chains]
            hot.trim()
            assert set(hot.peft_model.peft_config) == set(hot.loaded)
            logits = row_logits(model, tokenizer, hot, names)
        for row, chain in enumerate(chains):
            assert torch.allclose(logits[row : row + 1], merged_logits(chain), atol=1e-5)
        return names

    batch([a], [a, b])  # b was needed only to build the combined adapter
    assert list(hot.loaded) == [name_a, name_ab]
    assert not (tmp_path / "hot" / name_b).exists()
    batch([c], [a, b])  # the combined adapter is kept for the batch, its parts need not come back
    assert list(hot.loaded) == [name_c, name_ab]
    batch([a], [b])  # the combined adapter goes like any other
    assert list(hot.loaded) == [name_a, name_b]
    batch([a, b], [c], [a])  # rebuilt; more than the capacity in use, all of it stays for this batch
    assert list(hot.loaded) == [name_ab, name_c, name_a]
    hot.activate([])
    assert list(hot.loaded) == [name_c, name_a]


def count_generate(monkeypatch) -> list[int]:
    """Records the number of rows of every model.generate call."""
    calls: list[int] = []
    generate = GenerationMixin.generate

    def counted(self, *args, **kwargs):
        calls.append(len(kwargs.get("input_ids", args[0] if args else None)))
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", counted)
    return calls


def test_one_generate_serves_base_single_and_chained_rows_as_each_alone(tiny_model, adapters, tmp_path, monkeypatch):
    a, b, c = (adapters[name] for name in "abc")
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=8)
    poster = MemoryPoster()
    sampler = Sampler({"base_model": TINY_MODEL}, None, poster, ReplyGenerator(model, tokenizer, hot), hot)
    calls = count_generate(monkeypatch)
    requests = [
        chat("base", max_tokens=10),
        chat("a", BREAD, adapters=[a], max_tokens=10),
        chat("ab", adapters=[a, b], max_tokens=10, n=2),
        chat("base-bread", BREAD, max_tokens=10),
        chat("c", adapters=[c], max_tokens=10, stop=["never"]),
    ]
    sampler._serve_batch(requests)
    assert calls == [6]  # one mixed batch, n=2 giving two rows
    mixed = {request["id"]: poster.boxes.pop(request["id"]) for request in requests}
    assert len({box.texts[0] for box in mixed.values()}) == len(requests)

    calls.clear()
    for request in requests:
        sampler._serve_batch([request])
        alone = poster.boxes.pop(request["id"])
        assert mixed[request["id"]].texts == alone.texts and mixed[request["id"]].ending == alone.ending, request["id"]
    assert calls == [1, 1, 2, 1, 1]

    merged, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": [a, b]}, None, "cpu")
    assert mixed["ab"].texts == dict.fromkeys([0, 1], greedy_reply(merged, tokenizer, SEA, 10))


def test_a_chain_that_cannot_be_combined_gets_its_own_generate(tiny_model, adapters, tmp_path, monkeypatch):
    a, b = adapters["a"], adapters["b"]
    rooted_on_layer0 = [adapters["layer0"], b]
    model, tokenizer = base_model()
    hot = HotAdapters(model, tmp_path / "hot", capacity=8)
    poster = MemoryPoster()
    sampler = Sampler({"base_model": TINY_MODEL}, None, poster, ReplyGenerator(model, tokenizer, hot), hot)
    calls = count_generate(monkeypatch)

    sampler._serve_batch(
        [chat("odd", adapters=rooted_on_layer0, max_tokens=10), chat("base", max_tokens=10), chat("ab", adapters=[a, b], max_tokens=10)]
    )
    assert calls == [2, 1]  # the mixed batch, then the chain on its own
    for request_id, chain in {"odd": rooted_on_layer0, "base": [], "ab": [a, b]}.items():
        merged, tokenizer = load_model({"base_model": TINY_MODEL, "adapters": chain}, None, "cpu")
        assert poster.boxes[request_id].texts == {0: greedy_reply(merged, tokenizer, SEA, 10)}, request_id
        assert poster.boxes[request_id].ending["done"] is not None
