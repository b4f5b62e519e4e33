"""Micro-batches group examples of similar length within each optimizer step, deterministically with
the seed, and the grouping leaves the update unchanged."""

import contextlib
import math
import random

import pytest
import torch
from peft import LoraConfig

import bakehouse_engine.bake as bake
from bakehouse_engine.bake.batches import MicroBatch, epoch_steps
from bakehouse_engine.bake.model_parts import Heads
from bakehouse_engine.bake.sequences import TrainingExample, build_example
from bakehouse_engine.bake.settings import resolve_settings
from bakehouse_engine.bake.teacher import TeacherCache
from bakehouse_engine.bake.train import accumulate_gradients
from bakehouse_engine.models import load_model
from job_harness import rollout_lines, tiny_model, tiny_model_cache  # noqa: F401


def examples_of_lengths(lengths: list[int]) -> list[TrainingExample]:
    return [TrainingExample([1] * n, [2] * (n + 3), n - 1, n + 2, 1) for n in lengths]


LENGTHS = [(index * 37) % 101 + 2 for index in range(40)]  # 40 distinct lengths spread over 2…102


def padding(examples: list[TrainingExample], micro_batches: list[list[int]]) -> int:
    total = 0
    for indices in micro_batches:
        lengths = [len(examples[index].student_ids) for index in indices]
        total += len(lengths) * max(lengths) - sum(lengths)
    return total


def plain_order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    if epoch:
        random.Random(seed + epoch).shuffle(order)
    return order


def test_each_epoch_covers_every_example_once_in_as_many_steps_as_before():
    examples = examples_of_lengths(LENGTHS)
    for epoch in range(3):
        steps = epoch_steps(examples, 3, 4, seed=42, epoch=epoch)
        micro = [indices for step in steps for indices in step]
        assert sorted(index for indices in micro for index in indices) == list(range(40))
        assert len(steps) == math.ceil(40 / 12) and len(micro) == math.ceil(40 / 3)
        assert all(len(indices) == 3 for indices in micro[:-1]) and len(micro[-1]) == 40 % 3


def test_the_grouping_is_the_same_for_the_same_seed_and_differs_for_another():
    examples = examples_of_lengths(LENGTHS)
    assert epoch_steps(examples, 4, 3, seed=7, epoch=2) == epoch_steps(examples, 4, 3, seed=7, epoch=2)
    assert epoch_steps(examples, 4, 3, seed=7, epoch=2) != epoch_steps(examples, 4, 3, seed=8, epoch=2)
    assert epoch_steps(examples, 4, 3, seed=7, epoch=1) != epoch_steps(examples, 4, 3, seed=7, epoch=2)


def test_steps_keep_their_examples_and_micro_batches_hold_neighbours_in_length():
    examples = examples_of_lengths(LENGTHS)
    steps = epoch_steps(examples, 4, 5, seed=42, epoch=1)
    order = plain_order(40, 42, 1)
    grouped_padding = plain_padding = 0
    for number, step in enumerate(steps):
        members = order[number * 20 : (number + 1) * 20]
        # The step trains on the same examples as without grouping ...
        assert sorted(index for indices in step for index in indices) == sorted(members)
        # ... and each micro-batch is a run of neighbours in the step's length order.
        ranked = sorted(len(examples[index].student_ids) for index in members)
        for indices in step:
            lengths = sorted(len(examples[index].student_ids) for index in indices)
            first = ranked.index(lengths[0])
            assert lengths == ranked[first : first + len(lengths)]
        grouped_padding += padding(examples, step)
        plain_padding += padding(examples, [members[i : i + 4] for i in range(0, 20, 4)])
    assert grouped_padding * 3 < plain_padding


@pytest.mark.parametrize("top_k", [None, 5])
def test_how_a_step_is_split_into_micro_batches_does_not_change_the_update(tiny_model, top_k):
    model, tokenizer = load_model({"base_model": tiny_model, "adapters": []}, "fp32", "cpu")
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=32, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    settings = resolve_settings({"data": {"top_k": top_k}}, "cpu")
    peft_model = bake.attach_lora(model, config, settings)
    examples = [build_example(tokenizer, line, 200) for line in rollout_lines(6)]
    teachers = TeacherCache(examples, Heads(peft_model), tokenizer.pad_token_id, settings.temperature, top_k)
    results = []
    for split in ([[0, 1], [2, 3], [4, 5]], [[5, 2, 0], [4], [1, 3]]):
        batches = [MicroBatch.build(examples, indices, tokenizer.pad_token_id) for indices in split]
        peft_model.zero_grad(set_to_none=True)
        loss, _ = accumulate_gradients(peft_model, batches, teachers, Heads(peft_model), settings, torch.device("cpu"), contextlib.nullcontext)
        results.append((loss, {n: p.grad.clone() for n, p in peft_model.named_parameters() if p.requires_grad}))
    (loss, grads), (other_loss, other_grads) = results
    assert loss > 0 and other_loss == pytest.approx(loss, rel=1e-5)
    for name, grad in grads.items():
        assert torch.allclose(other_grads[name], grad, rtol=1e-4, atol=1e-6 * grad.abs().max().item()), name
