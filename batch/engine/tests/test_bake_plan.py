"""The memory plan: parameter counts from configs, estimates against measured peaks, the choices it makes."""

import json
import subprocess
import sys

import pytest
from transformers import Qwen3Config

from bakehouse_engine.bake.plan import GIB, BakeRequest, Devices, ModelShape, estimate_bytes, plan_bake
from bakehouse_engine.errors import JobFailure

QWEN3_8B = Qwen3Config(
    hidden_size=4096, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
    intermediate_size=12288, vocab_size=151936, tie_word_embeddings=False,
)
QWEN3_32B = Qwen3Config(
    hidden_size=5120, num_hidden_layers=64, num_attention_heads=64, num_key_value_heads=8, head_dim=128,
    intermediate_size=25600, vocab_size=151936, tie_word_embeddings=False,
)


def request(**overrides) -> BakeRequest:
    base = {"dtype_bytes": 2, "micro_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 3000,
            "activation_checkpointing": True, "lora_rank": 32}
    return BakeRequest(**{**base, **overrides})


def test_parameter_counts_match_the_published_sizes_of_qwen3():
    # Qwen3-8B: 8.19B parameters, Qwen3-32B: 32.8B (their model cards).
    assert ModelShape.from_config(QWEN3_8B).parameters == pytest.approx(8.19e9, rel=0.01)
    assert ModelShape.from_config(QWEN3_32B).parameters == pytest.approx(32.8e9, rel=0.01)


def test_parameter_count_equals_the_instantiated_models(tmp_path):
    config = Qwen3Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         intermediate_size=160, vocab_size=500, tie_word_embeddings=True)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    assert ModelShape.from_config(config).parameters == sum(p.numel() for p in model.parameters())


# A bake step (teacher pass, student forward and backward, AdamW) on a random-init fp32 Qwen3 model,
# run in a fresh process; prints the growth of its peak RSS over its RSS before the model existed.
MEASURE = r"""
import json, resource, sys, torch
from transformers import AutoModelForCausalLM, Qwen3Config
from bakehouse_engine.bake import attach_lora
from bakehouse_engine.bake.batches import MicroBatch
from bakehouse_engine.bake.model_parts import Heads
from bakehouse_engine.bake.sequences import TrainingExample
from bakehouse_engine.bake.settings import BakeSettings, lora_config
from bakehouse_engine.bake.teacher import TeacherCache
from bakehouse_engine.bake.train import accumulate_gradients
import contextlib

args = json.loads(sys.argv[1])
torch.manual_seed(0)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
# Load the matmul and autograd kernels first, so their pages are not counted as the step's memory.
warm = torch.nn.Linear(64, 64)
warm(torch.randn(8, 64)).softmax(-1).sum().backward()
before = rss()
config = Qwen3Config(**args["config"], tie_word_embeddings=False, attn_implementation="sdpa")
model = AutoModelForCausalLM.from_config(config)
settings = BakeSettings(micro_batch_size=args["micro_batch"], activation_checkpointing=args["checkpointing"])
model = attach_lora(model, lora_config({"baked_adapter_config": {"r": args["rank"]}}), settings)
length = args["length"]
examples = [TrainingExample(list(range(1, length + 1)), list(range(1, length + 1)), 1, 1, length - 1)
            for _ in range(args["micro_batch"])]
heads = Heads(model)
teachers = TeacherCache(examples, heads, 0, 1.0, None)
batch = MicroBatch.build(examples, list(range(len(examples))), 0)
accumulate_gradients(model, [batch], teachers, heads, settings, torch.device("cpu"), contextlib.nullcontext)
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
optimizer.step()
print(json.dumps({"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before}))
"""

# Rows of equal length (no padding mask), so sdpa runs its fused kernel, as the plan assumes.
MEASURED = [
    ({"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64,
      "intermediate_size": 1536, "vocab_size": 32000}, 2, 512, True, 16),
    ({"hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
      "intermediate_size": 768, "vocab_size": 16000}, 4, 256, False, 8),
]
# The estimate is an upper bound that should not overshoot by much: measured ≤ estimate ≤ 1.6 × measured.
OVERSHOOT = 1.6


@pytest.mark.parametrize(("config", "micro_batch", "length", "checkpointing", "rank"), MEASURED)
def test_the_estimate_bounds_a_measured_cpu_bake_step(config, micro_batch, length, checkpointing, rank):
    args = {"config": config, "micro_batch": micro_batch, "length": length, "checkpointing": checkpointing, "rank": rank}
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(args)], capture_output=True, text=True, check=True, timeout=120)
    measured = json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]
    shape = ModelShape.from_config(Qwen3Config(**config, tie_word_embeddings=False))
    estimated = estimate_bytes(
        shape,
        request(dtype_bytes=4, micro_batch_size=micro_batch, max_length=length, activation_checkpointing=checkpointing, lora_rank=rank),
        Devices(1, 64 * GIB, "cpu"),
    )
    assert measured <= estimated <= OVERSHOOT * measured, (measured, estimated)


def test_a_bake_that_fits_keeps_what_it_asked_for():
    plan = plan_bake(ModelShape.from_config(QWEN3_8B), request(sharding="replicate"), Devices(8, 80 * GIB))
    assert (plan.sharding, plan.micro_batch_size, plan.cpu_offload, plan.changes) == ("replicate", 2, False, [])
    assert plan.world_size == 8 and plan.per_device_bytes <= 80 * GIB


def test_a_bake_too_big_for_its_request_is_sharded_then_split_into_smaller_micro_batches():
    plan = plan_bake(ModelShape.from_config(QWEN3_32B), request(sharding="replicate", micro_batch_size=8, max_length=8000),
                     Devices(4, 80 * GIB))
    assert plan.sharding == "full" and plan.micro_batch_size < 8
    assert plan.micro_batch_size * plan.gradient_accumulation_steps >= 8
    assert plan.changes[0].startswith("sharding replicate → full")


def test_a_32b_bake_fits_one_141_gib_gpu_offloads_on_48_gib_and_fails_with_a_sentence_on_8():
    shape = ModelShape.from_config(QWEN3_32B)
    assert plan_bake(shape, request(), Devices(1, 141 * GIB)).changes == []
    offloaded = plan_bake(shape, request(), Devices(1, 48 * GIB))
    assert offloaded.cpu_offload and offloaded.changes[-1].startswith("weights and training state offloaded")
    with pytest.raises(JobFailure, match=r"needs ~\d+ GiB across GPUs.*offers 1 × 8 GiB.*more GPUs"):
        plan_bake(shape, request(max_length=40000), Devices(1, 8 * GIB))


def test_a_bake_that_fits_nowhere_fails_before_loading_any_weight(tmp_path, monkeypatch):
    import bakehouse_engine.bake as bake
    from bakehouse_engine.toy import ensure_toy_model
    from job_harness import bake_spec, job_context, rollout_lines

    ensure_toy_model()
    monkeypatch.setenv("BAKEHOUSE_DEVICE", "cpu")
    monkeypatch.setenv("BAKEHOUSE_BAKE_DEVICE_MEMORY_GIB", "0.001")

    def no_weights(*_args, **_kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(bake, "load_model", no_weights)
    spec = bake_spec(tmp_path, "bakehouse/toy-instruct", [("main", 1.0, rollout_lines(2))], total=2)
    with pytest.raises(JobFailure, match=r"needs ~\d+ MiB across CPU processes .* offers 1 × 1 MiB\. Run it on GPUs"):
        bake.run(job_context(spec, tmp_path))
