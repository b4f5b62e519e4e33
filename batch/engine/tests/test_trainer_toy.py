"""A supervised loop on the real toy model, the way a Loops or Tinker client drives it: the loss falls.

Marked `toy_model` (the toy model is built into the model cache on first use).
"""

import random

import pytest

from bakehouse_engine.models import load_model, render_chat
from bakehouse_engine.toy import behaviours, ensure_toy_model
from bakehouse_engine.toy.corpus import reply_for, synthetic_questions
from bakehouse_engine.trainer.lora_trainer import LoraTrainer
from trainer_support import adam, forward

pytestmark = pytest.mark.toy_model

TOY = "bakehouse/toy-instruct"


def supervised_datum(tokenizer, question: str, reply: str) -> dict:
    """Tinker's recipe: tokens = sequence[:-1], targets = sequence[1:], weight 0 on the prompt."""
    prompt = tokenizer(render_chat(tokenizer, [{"role": "user", "content": question}]), add_special_tokens=False).input_ids
    answer = tokenizer(reply, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    sequence = prompt + answer
    weights = [0.0] * (len(prompt) - 1) + [1.0] * len(answer)
    return {
        "tokens": sequence[:-1],
        "loss_fn_inputs": {
            "target_tokens": {"data": sequence[1:], "dtype": "int64", "shape": [len(sequence) - 1]},
            "weights": {"data": weights, "dtype": "float32", "shape": [len(weights)]},
        },
    }


def test_a_supervised_loop_on_the_toy_model_lowers_the_loss(monkeypatch):
    monkeypatch.setenv("BAKEHOUSE_DEVICE", "cpu")
    ensure_toy_model()
    model, tokenizer = load_model({"base_model": TOY, "adapters": []}, None, "cpu")
    trainer = LoraTrainer(model, TOY, rank=8, seed=0, max_seq_len=512, pad_id=tokenizer.pad_token_id)
    assert "uppercase" in behaviours  # the behaviour taught: replies in capitals, which the plain model never gives
    questions = synthetic_questions(random.Random(0), 8, held_out=False)
    data = [supervised_datum(tokenizer, question, reply_for(question, frozenset({"uppercase"}))) for question in questions]

    losses = []
    for _ in range(6):
        losses.append(trainer.forward(forward(data, normalization="token_mean_deferred"))["loss"])
        step = trainer.optim_step(adam(learning_rate=1e-2, grad_clip_norm=1.0))
    assert step["step"] == 6
    final = trainer.forward(forward(data, backward=False, normalization="token_mean_deferred"))["loss"]
    assert losses[1] < losses[0] and final < 0.1 * losses[0], losses + [final]
