"""Chat sampler throughput on the CPU with the toy model: requests for different checkpoints in one
mixed batch against one batch per adapter chain.

8 concurrent chat requests, 2 for each of 4 adapter chains: the bare base model, adapter A, adapter
C, and the chain A → B (a checkpoint baked on A, which the sampler serves as one combined adapter).
The adapters are small random LoRA adapters (all-linear, r 8, α 16), in two scenarios (SCENARIOS):
B scaled so that replies stay short sentences ("text_like"), and so that some replies ramble to
`max_tokens` while others stop early ("rambling": a batch runs until its longest row ends, so mixing
chains then gains less). Each batch goes through the sampler's own `_serve_batch` (prompt rendering, adapters,
generation, per-row sampling and streaming into in-memory outboxes), greedy, `max_tokens` 64:

- mixed: the sampler as it is, one generate call with a per-row adapter (PEFT mixed-batch inference);
- one batch per chain (baseline): the sampler's previous behaviour, one generate call per chain, one
  after another, each with that chain's adapters active;

And the cost of the per-row adapters themselves: one forward pass of 8 rows × 32 tokens (median of
FORWARDS) with every row on adapter A, against the 4 chains' adapters mixed, 2 rows each.

Modes alternate for ROUNDS rounds after a warm-up round (the combined adapter is built before, timed
on its own); the best round of each counts, as in cpu_bench.py. Completion tokens per second
of wall time, and the mixed/baseline ratio. Every round asks the same questions; the replies of the
mixed batch and the baseline are compared (greedy, so they should match).

Usage (from the repository root): batch/engine/.venv/bin/python bench/engine/sampler_bench.py
Writes bench/results/engine-sampler.json and prints it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from machine import cpu_machine

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "batch" / "engine" / "src"))
sys.path.insert(0, str(REPO / "batch" / "engine" / "tests"))  # memory_outbox: the tests' in-memory outboxes
os.environ.setdefault("BAKEHOUSE_DEVICE", "cpu")

if TYPE_CHECKING:
    from memory_outbox import MemoryPoster

ROUNDS = 5
FORWARDS = 30
MAX_TOKENS = 64
REQUESTS_PER_CHAIN = 2
RANK = 8
# lora_B scaled by this after random initialisation: "text_like" adapters change the replies but keep
# them short sentences, as the toy model's own; "rambling" ones make some replies run to max_tokens.
SCENARIOS = {"text_like": 0.5, "rambling": 1.0}


def save_adapter(model_dir: Path, out: Path, seed: int, b_scale: float) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules="all-linear", init_lora_weights=False))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(b_scale)
    peft_model.save_pretrained(out)
    return {"model_name": f"bench/sampler/{out.name}/1", "uri": out.as_uri() + "/"}


def requests(chains: dict[str, list[dict]]) -> list[dict]:
    from bakehouse_engine.stim.from_dataset import shipped_questions
    from bakehouse_engine.toy.cache import TOY_MODEL_NAME

    questions = shipped_questions("squad")
    batch = []
    for chain_index, (chain_name, chain) in enumerate(chains.items()):
        for k in range(REQUESTS_PER_CHAIN):
            question = questions[chain_index * REQUESTS_PER_CHAIN + k]
            batch.append(
                {
                    "kind": "chat",
                    "id": f"{chain_name}-{k}",
                    "model": {"base_model": TOY_MODEL_NAME, "adapters": chain},
                    "messages": [{"role": "user", "content": question}],
                    "tools": None,
                    "params": {
                        "n": 1, "temperature": 0, "top_p": 1, "max_tokens": MAX_TOKENS, "stop": [], "seed": None,
                        "chat_template_kwargs": {},
                    },
                }
            )
    return batch


def serve_grouped(sampler, batch: list[dict]) -> None:
    """The sampler's previous `_serve_batch`: one generate call per adapter chain, one after another."""
    by_chain: dict[tuple[str, ...], list] = {}
    for request in batch:
        reply = sampler.generator.prepare(request, sampler.poster.open(request["id"]))
        by_chain.setdefault(tuple(adapter["uri"] for adapter in request["model"]["adapters"]), []).append(reply)
    for replies in by_chain.values():
        sampler._generate(replies, None)


def timed(poster: MemoryPoster, serve, batch: list[dict]) -> dict:
    poster.boxes.clear()
    started = time.perf_counter()
    serve(batch)
    elapsed = time.perf_counter() - started
    assert all(box.ending and box.ending["done"] for box in poster.boxes.values()), "a request failed"
    tokens = sum(box.ending["done"]["usage"]["completion_tokens"] for box in poster.boxes.values())
    return {
        "wall_s": round(elapsed, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / elapsed, 1),
        "replies": {request_id: box.texts.get(0, "") for request_id, box in poster.boxes.items()},
    }


def forward_ms(model, hot, names: list[str]) -> float:
    """Median milliseconds of one forward pass over len(names) rows of 32 tokens, row i with adapter names[i]."""
    import torch

    ids = torch.randint(3, 2000, (len(names), 32), generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        for _ in range(FORWARDS + 3):
            started = time.perf_counter()
            with hot.rows(names):
                model(ids)
            times.append(time.perf_counter() - started)
    return round(statistics.median(times[3:]) * 1000, 2)


def best_round(rounds: list[dict]) -> dict:
    best = {key: value for key, value in max(rounds, key=lambda run: run["tokens_per_s"]).items() if key != "replies"}
    best["tokens_per_s_rounds"] = [run["tokens_per_s"] for run in rounds]
    return best


def scenario(toy_dir: Path, root: Path, b_scale: float, calls: list[int]) -> dict:
    """One setting of the adapters: every mode, ROUNDS rounds after a warm-up, the best round of each."""
    from bakehouse_engine.models import load_model
    from bakehouse_engine.sampler import Sampler
    from bakehouse_engine.sampler.adapters import HotAdapters
    from bakehouse_engine.sampler.generation import ReplyGenerator
    from bakehouse_engine.toy.cache import TOY_MODEL_NAME
    from memory_outbox import MemoryPoster

    a, b, c = (save_adapter(toy_dir, root / name, seed, b_scale) for seed, name in enumerate("abc", start=1))
    chains = {"base": [], "a": [a], "c": [c], "a-b": [a, b]}
    model, tokenizer = load_model({"base_model": TOY_MODEL_NAME, "adapters": []}, None, "cpu")
    hot = HotAdapters(model, root / "hot", capacity=8)
    poster = MemoryPoster()
    sampler = Sampler({"base_model": TOY_MODEL_NAME}, None, poster, ReplyGenerator(model, tokenizer, hot), hot)
    batch = requests(chains)
    modes = {"mixed": sampler._serve_batch, "one_batch_per_chain": lambda batch: serve_grouped(sampler, batch)}

    started = time.perf_counter()
    hot.activate([a, b])  # the adapters loaded, as a warm sampler has them
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    with hot.batch(list(chains.values())):
        hot.row_adapter([a, b])
    combine_s = time.perf_counter() - started

    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    generate_calls: dict[str, list[int]] = {}
    for round_index in range(ROUNDS + 1):
        for mode, serve in modes.items():
            calls.clear()
            run = timed(poster, serve, batch)
            generate_calls[mode] = list(calls)
            if round_index:  # round 0 warms up
                runs[mode].append(run)
    best = {mode: best_round(runs[mode]) | {"generate_calls_rows": generate_calls[mode]} for mode in modes}
    with hot.batch(list(chains.values())):
        mixed_names = [hot.row_adapter(chain) for chain in chains.values() for _ in range(REQUESTS_PER_CHAIN)]
    one_name = [mixed_names[REQUESTS_PER_CHAIN]] * len(mixed_names)
    forward = {"one_adapter_ms": forward_ms(model, hot, one_name), "mixed_ms": forward_ms(model, hot, mixed_names)}
    return {
        "lora_B_scale": b_scale,
        "adapter_load_s": round(load_s, 3),
        "combine_s": round(combine_s, 3),
        **best,
        "mixed_vs_one_batch_per_chain": round(best["mixed"]["tokens_per_s"] / best["one_batch_per_chain"]["tokens_per_s"], 2),
        "forward_8x32": forward | {"mixed_vs_one_adapter": round(forward["mixed_ms"] / forward["one_adapter_ms"], 2)},
        "same_replies": all(
            mixed["replies"] == grouped["replies"] for mixed, grouped in zip(runs["mixed"], runs["one_batch_per_chain"])
        ),
        "sample_replies": {chain: runs["mixed"][-1]["replies"][f"{chain}-0"] for chain in chains},
    }


def main() -> None:
    from transformers.generation.utils import GenerationMixin

    from bakehouse_engine.toy import ensure_toy_model, model_cache_dir
    from bakehouse_engine.toy.cache import TOY_MODEL_NAME

    ensure_toy_model()
    toy_dir = model_cache_dir() / TOY_MODEL_NAME
    calls: list[int] = []
    generate = GenerationMixin.generate

    def counted(self, *args, **kwargs):
        calls.append(len(kwargs["input_ids"]))
        return generate(self, *args, **kwargs)

    GenerationMixin.generate = counted  # counts the generate calls (and their rows) of each way

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bakehouse-sampler-bench-") as scratch:
        scenarios = {
            name: scenario(toy_dir, Path(scratch) / name, b_scale, calls) for name, b_scale in SCENARIOS.items()
        }
    load_after = os.getloadavg()[0]

    report = {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_machine(load_before, load_after),
        "model": TOY_MODEL_NAME,
        "setting": {
            "requests": 4 * REQUESTS_PER_CHAIN, "chains": ["base", "a", "c", "a-b"],
            "adapters": f"all-linear, r {RANK}, alpha {2 * RANK}", "max_tokens": MAX_TOKENS, "temperature": 0,
            "rounds": ROUNDS,
        },
        "scenarios": scenarios,
    }
    out = REPO / "bench" / "results" / "engine-sampler.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
