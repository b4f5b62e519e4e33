"""End to end on the real toy model: rollout with the prompt, bake, and the behaviour shows without it.

Marked `toy_model` (the toy model is built into the model cache on first use); run with
`pytest -m toy_model`. The bake settings here are the ones tuned for the toy model on CPU.
"""

import random

import pytest

import bakehouse_engine.bake as bake
from bakehouse_engine import rollout
from bakehouse_engine.toy import behaviours, ensure_toy_model
from bakehouse_engine.toy.corpus import synthetic_questions
from bakehouse_engine.toy.evaluate import held_out_questions
from job_harness import bake_spec, close, job_context, read_jsonl, rollout_spec, stim_line

pytestmark = pytest.mark.toy_model

TOY = "bakehouse/toy-instruct"
TRAIN_STIMULI = 48
EVAL_STIMULI = 64
# Tuned on CPU (see the engine report): with the default template's LoRA shape (r 32, α 16), Bread's
# production learning rate 1e-2 bakes every toy behaviour in 12 steps; 1e-3 or the template's 1e-4
# barely move the loss in that many.
TOY_BAKE = {
    "epochs": 2,
    "micro_batch_size": 8,
    "optimizer": {"learning_rate": 1e-2},
    "model": {"baked_adapter_config": {"r": 32, "lora_alpha": 16, "target_modules": "all-linear", "lora_dropout": 0, "bias": "none"}},
}


def run(module, spec, root):
    ctx = job_context(spec, root)
    result = module.run(ctx)
    close(ctx)
    return result, read_jsonl(root / "out" / "output.jsonl") if (root / "out" / "output.jsonl").exists() else []


def behaviour_rate(lines: list[dict], detect) -> float:
    return sum(detect(line["response"]) for line in lines) / len(lines)


@pytest.mark.parametrize("behaviour", sorted(behaviours))
def test_a_baked_behaviour_shows_without_the_prompt(behaviour, tmp_path, monkeypatch):
    monkeypatch.setenv("BAKEHOUSE_DEVICE", "cpu")
    ensure_toy_model()
    system_prompt, detect = behaviours[behaviour]

    questions = synthetic_questions(random.Random(0), TRAIN_STIMULI, held_out=False)
    teacher_stim = [stim_line(index, question, system_prompt) for index, question in enumerate(questions)]
    _, trajectories = run(rollout, rollout_spec(tmp_path / "rollout", TOY, teacher_stim, num_traj_per_stimulus=1, max_tokens=48, max_concurrency=16), tmp_path / "rollout")
    assert behaviour_rate(trajectories, detect) >= 0.9  # the teacher shows the behaviour

    spec = bake_spec(tmp_path / "bake", TOY, [("main", 1.0, trajectories)], total=len(trajectories), **TOY_BAKE)
    result, _ = run(bake, spec, tmp_path / "bake")
    step = result["checkpoints"][-1]
    adapter = {"model_name": f"user/repo/bake1/{step}", "uri": (tmp_path / "bake" / "out" / "ckpts" / f"{step}").as_uri() + "/"}

    plain_stim = [stim_line(index, question, None) for index, question in enumerate(held_out_questions()[:EVAL_STIMULI])]
    evaluation = {"num_traj_per_stimulus": 1, "temperature": 0, "max_tokens": 48, "max_concurrency": 16}
    _, base_replies = run(rollout, rollout_spec(tmp_path / "base", TOY, plain_stim, **evaluation), tmp_path / "base")
    baked_spec = rollout_spec(tmp_path / "baked", TOY, plain_stim, **evaluation)
    baked_spec["rollout"]["model"]["adapters"] = [adapter]
    _, baked_replies = run(rollout, baked_spec, tmp_path / "baked")

    assert behaviour_rate(base_replies, detect) <= 0.05
    assert behaviour_rate(baked_replies, detect) >= 0.9
    assert result["loss"]["final_loss"] < 0.1 * result["loss"]["max_loss"]
