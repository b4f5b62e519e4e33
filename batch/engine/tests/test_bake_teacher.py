"""The teacher's distribution is computed once per example and reused in later epochs."""

import pytest
import torch
from peft import LoraConfig

import bakehouse_engine.bake as bake
from bakehouse_engine.bake import teacher as teacher_module
from bakehouse_engine.bake.sequences import build_example
from bakehouse_engine.bake.settings import resolve_settings
from bakehouse_engine.bake.train import train
from bakehouse_engine.models import load_model
from job_harness import rollout_lines, tiny_model, tiny_model_cache  # noqa: F401


class RecordingWriter:
    def __init__(self):
        self.steps = []

    def save(self, model, step):
        self.steps.append(step)


def bake_three_epochs(tiny_model, monkeypatch, top_k: int | None) -> tuple[list[list[int]], list[float]]:
    """Trains 3 epochs on 6 examples; returns the example indices of each teacher pass and the losses."""
    passes: list[list[int]] = []
    original = teacher_module.TeacherCache._teacher_pass

    def recording_pass(self, model, run_decoder, indices, device):
        passes.append(list(indices))
        return original(self, model, run_decoder, indices, device)

    monkeypatch.setattr(teacher_module.TeacherCache, "_teacher_pass", recording_pass)
    torch.manual_seed(0)
    model, tokenizer = load_model({"base_model": tiny_model, "adapters": []}, "fp32", "cpu")
    config = {"epochs": 3, "micro_batch_size": 2, "optimizer": {"learning_rate": 1e-2}, "data": {"top_k": top_k}}
    settings = resolve_settings(config, "cpu")
    peft_model = bake.attach_lora(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"), settings)
    examples = [build_example(tokenizer, line, 200) for line in rollout_lines(6)]
    rows: list[dict] = []
    train(peft_model, examples, settings, tokenizer.pad_token_id, 1000, RecordingWriter(), rows.append, lambda s, t: None)
    return passes, [row["loss"] for row in rows]


@pytest.mark.parametrize("top_k", [None, 5])
def test_the_teacher_runs_once_per_example_across_epochs(tiny_model, monkeypatch, top_k):
    passes, losses = bake_three_epochs(tiny_model, monkeypatch, top_k)
    assert len(losses) == 9
    assert sorted(index for indices in passes for index in indices) == list(range(6))


def test_without_room_to_cache_the_teacher_runs_every_epoch_and_trains_the_same(tiny_model, monkeypatch):
    _, cached_losses = bake_three_epochs(tiny_model, monkeypatch, None)
    monkeypatch.setattr(teacher_module, "available_host_memory", lambda: 0)
    passes, losses = bake_three_epochs(tiny_model, monkeypatch, None)
    assert sorted(index for indices in passes for index in indices) == sorted(list(range(6)) * 3)
    assert losses == pytest.approx(cached_losses, rel=1e-6)
