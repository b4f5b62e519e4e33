"""Distributed bakes: the deepspeed mapping, the rendezvous, and a 2-process FSDP bake on the CPU (gloo)
against the 1-process bake of the same data and seed."""

import json

import pytest
import torch

import bakehouse_engine.bake as bake
from bakehouse_engine import distributed
from bakehouse_engine.bake.plan import GIB, BakePlan
from bakehouse_engine.bake.ranks import Ranks
from bakehouse_engine.bake.settings import resolve_settings
from bakehouse_engine.bake import sharding
from bakehouse_engine.bake.settings import lora_config
from bakehouse_engine.bake.sharding import applied_config, requested_sharding
from bakehouse_engine.models import load_model
from bakehouse_engine.toy import ensure_toy_model
from job_harness import bake_spec, close, job_context, read_jsonl, rollout_lines

TOY = "bakehouse/toy-instruct"
# Losses of the same steps summed in another order across processes: equal to float32 rounding.
LOSS_RTOL = 1e-4
LOGITS_ATOL = 1e-4


def plan(world: int, sharding: str = "full", offload: bool = False, changes: list[str] | None = None) -> BakePlan:
    return BakePlan(world, sharding, offload, True, 2, 1, 30 * GIB, 80 * GIB, changes or [])


@pytest.mark.parametrize(("stage", "sharding"), [(0, "replicate"), (1, "replicate"), (2, "grad_op"), (3, "full"), (None, "full")])
def test_zero_stages_map_to_fsdp_sharding(stage, sharding):
    config = {"deepspeed": {"zero_optimization": {"stage": stage}}} if stage is not None else {}
    assert requested_sharding(resolve_settings(config, "cuda")) == sharding


def test_result_says_how_each_deepspeed_field_was_applied():
    config = {
        "deepspeed": {"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}, "offload_optimizer": {"device": "none"}}},
        "activation_checkpoint_cpu_offload": True,
    }
    settings = resolve_settings(config, "cuda")
    assert settings.offload == ["offload_param"] and settings.unhonoured == []
    notes = applied_config(settings, plan(8, "grad_op", offload=True, changes=["micro_batch_size 4 → 2: …"]), "cuda")
    assert notes[0] == (
        "deepspeed.zero_optimization.stage 2: FSDP SHARD_GRAD_OP (gradients and optimizer state split across processes, "
        "parameters kept whole within a step) over 8 processes"
    )
    assert notes[1].startswith("deepspeed.zero_optimization.offload_param: FSDP CPU offload")
    assert notes[2].startswith("activation_checkpoint_cpu_offload: activations saved for the backward pass kept in host memory")
    assert notes[3] == "plan: micro_batch_size 4 → 2: …"
    unneeded = applied_config(settings, plan(8, "grad_op"), "cuda")[1]
    assert unneeded.startswith("deepspeed.zero_optimization.offload_param: not needed to fit")
    assert applied_config(resolve_settings({"deepspeed": {"zero_optimization": {"stage": 3}}}, "cpu"), plan(1), "cpu") == [
        "deepspeed.zero_optimization.stage 3: one process holds the whole model; nothing to shard"
    ]


def test_aws_batch_multi_node_variables_become_the_torchrun_rendezvous():
    main = {"AWS_BATCH_JOB_NUM_NODES": "3", "AWS_BATCH_JOB_NODE_INDEX": "0"}
    other = {**main, "AWS_BATCH_JOB_NODE_INDEX": "2", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.7"}
    assert distributed.rendezvous(main) == distributed.Rendezvous(3, 0, "127.0.0.1", 29500)
    assert distributed.is_main_node(main) and not distributed.is_main_node(other)
    assert distributed.torchrun_args(8, distributed.rendezvous(other)) == [
        "--nproc-per-node=8", "--nnodes=3", "--node-rank=2", "--master-addr=10.0.0.7", "--master-port=29500",
    ]
    # torchrun's own variables win over Batch's.
    assert distributed.rendezvous({**other, "MASTER_ADDR": "node0", "NODE_RANK": "1"}).node_rank == 1
    assert distributed.torchrun_args(2, distributed.rendezvous({})) == ["--standalone", "--nproc-per-node=2"]
    assert distributed.processes_per_node("cpu", {"BAKEHOUSE_BAKE_PROCESSES": "2"}) == 2
    assert distributed.processes_per_node("cpu", {}) == 1


def test_each_process_trains_its_share_and_repeats_one_with_weight_zero_to_stay_in_step():
    steps = [[0, 1], [2, 3], [4]]
    assert Ranks(0, 2).share(steps) == [([0, 1], 1.0), ([4], 1.0)]
    assert Ranks(1, 2).share(steps) == [([2, 3], 1.0), ([2, 3], 0.0)]


def run_bake(root, processes: int, accumulate: int, stage: int) -> tuple[dict, list[float]]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BAKEHOUSE_DEVICE", "cpu")
        env.setenv("BAKEHOUSE_BAKE_PROCESSES", str(processes))
        lines = rollout_lines(10, response="Arr, the sea is wide and the wind is strong.")
        spec = bake_spec(root, TOY, [("main", 1.0, lines)], total=10, epochs=2, gradient_accumulation_steps=accumulate,
                         deepspeed={"zero_optimization": {"stage": stage}})
        ctx = job_context(spec, root)
        result = bake.run(ctx)
        close(ctx)
    return result, [row["loss"] for row in read_jsonl(root / "out" / "metrics.jsonl")]


def adapter_logits(root, step: int | None) -> torch.Tensor:
    """Logits on two prompts of the toy model with the bake's adapter at `step` merged in (None: without)."""
    adapters = [] if step is None else [
        {"model_name": f"user/repo/bake1/{step}", "uri": (root / "out" / "ckpts" / str(step)).as_uri() + "/"}
    ]
    model, tokenizer = load_model({"base_model": TOY, "adapters": adapters}, "fp32", "cpu", root / "eval")
    ids = tokenizer(["What is the sea number 3?", "Tell me about the wind."], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits


@pytest.fixture(scope="module")
def one_process_bake(tmp_path_factory):
    ensure_toy_model()
    root = tmp_path_factory.mktemp("one-process")
    result, losses = run_bake(root, processes=1, accumulate=2, stage=3)
    return result, losses, adapter_logits(root, 6), adapter_logits(root, None)


@pytest.mark.toy_model
@pytest.mark.parametrize(("stage", "described"), [
    (3, "FSDP full sharding (parameters, gradients and optimizer state split across processes)"),
    (2, "FSDP SHARD_GRAD_OP (gradients and optimizer state split across processes, parameters kept whole within a step)"),
    (0, "replicated data parallel (DistributedDataParallel: every process holds the whole model, gradients are averaged)"),
])
def test_a_two_process_bake_matches_the_one_process_bake(stage, described, one_process_bake, tmp_path):
    single, single_losses, single_logits, base_logits = one_process_bake
    # Two processes with one micro-batch each per step train the same steps as one process accumulating two.
    sharded, sharded_losses = run_bake(tmp_path, processes=2, accumulate=1, stage=stage)

    assert len(sharded_losses) == len(single_losses) == 6
    assert sharded_losses == pytest.approx(single_losses, rel=LOSS_RTOL)
    assert sharded_losses[-1] < sharded_losses[0]  # it trained
    assert sharded["checkpoints"] == single["checkpoints"] == [6]
    assert sharded["applied_config"] == [f"deepspeed.zero_optimization.stage {stage}: {described} over 2 processes"]
    adapter_config = json.loads((tmp_path / "out" / "ckpts" / "6" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == TOY  # the standard PEFT layout, gathered on rank 0
    logits = adapter_logits(tmp_path, 6)
    assert torch.allclose(logits, single_logits, atol=LOGITS_ATOL)
    assert torch.equal(logits.argmax(-1), single_logits.argmax(-1))
    assert not torch.allclose(logits, base_logits, atol=100 * LOGITS_ATOL)  # the adapter matters


def _load_on_two_processes(rank: int, root, reads) -> None:
    """One of two gloo processes loading the toy model for a full-sharded bake; records who read the weights."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{root / 'rendezvous'}", rank=rank, world_size=2)
    try:
        read_weights = sharding.read_weights

        def counted(*args):
            reads.put(rank)
            return read_weights(*args)

        sharding.read_weights = counted
        settings = resolve_settings({}, "cpu")
        ranks = Ranks(rank, 2, device=torch.device("cpu"))
        torch.manual_seed(settings.seed)
        model, _, _ = sharding.load_sharded(
            {"base_model": TOY}, settings, plan(2), ranks,
            lambda base: bake.attach_lora(base, lora_config({}), settings), root / f"parents{rank}",
        )
        state = ranks.full_state(model, {name for name, _ in model.named_parameters()})
        buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
        if rank == 0:
            torch.save({"state": state, "buffers": buffers}, root / "sharded.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.toy_model
def test_only_the_main_process_reads_the_weights_and_every_shard_gets_them(tmp_path):
    import multiprocessing

    ensure_toy_model()
    # Spawned, not forked: a fork of a process with torch's threads running may hang. Each process
    # installs its own spy on read_weights.
    context = multiprocessing.get_context("spawn")
    reads = context.Queue()
    processes = [context.Process(target=_load_on_two_processes, args=(rank, tmp_path, reads)) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [process.exitcode for process in processes] == [0, 0]
    assert [reads.get(timeout=5)] == [0] and reads.empty()

    settings = resolve_settings({}, "cpu")
    torch.manual_seed(settings.seed)
    model, _ = load_model({"base_model": TOY}, "fp32", "cpu")
    expected = bake.attach_lora(model, lora_config({}), settings)
    sharded = torch.load(tmp_path / "sharded.pt")
    whole = expected.state_dict()  # with the tied LM head, which sharding the decoder unties
    assert sharded["state"].keys() == whole.keys()
    for name, tensor in whole.items():
        assert torch.equal(sharded["state"][name], tensor), name  # base weights and LoRA init alike
    rotary = {name: buffer for name, buffer in expected.named_buffers() if name.endswith("inv_freq")}
    assert rotary and all(torch.equal(sharded["buffers"][name], buffer) for name, buffer in rotary.items())
