"""Behaviour rates of a toy-model-like chat model: how often each behaviour shows, by condition.

Used to verify a fresh toy model before it is saved, and by tests and benchmarks that check a
bake by behaviour: with its system prompt a behaviour must show on nearly every reply, without it
on nearly none, under greedy decoding and under plain temperature-1 sampling.
"""

from __future__ import annotations

import itertools
import random

import torch

from bakehouse_engine.toy import corpus

MIN_WITH_PROMPT = 0.95
MAX_WITHOUT_PROMPT = 0.05
HELD_OUT_SYNTHETIC = 120
MAX_NEW_TOKENS = 48


def held_out_questions(seed: int = 0) -> list[str]:
    """Questions the toy model never trained on, in the styles it did."""
    _, shipped = corpus.split_shipped_questions()
    return corpus.synthetic_questions(random.Random(seed + 1), HELD_OUT_SYNTHETIC, held_out=True) + shipped


@torch.no_grad()
def generate_replies(model, tokenizer, chats: list[list[dict]], sample: bool, seed: int = 0, batch_size: int = 64) -> list[str]:
    """Replies to each chat: greedy, or sampled at temperature 1 with no top-k/top-p truncation."""
    torch.manual_seed(seed)
    replies: list[str] = []
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(chats), batch_size):
            texts = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in chats[start : start + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            sampling = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {"do_sample": False}
            output = model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, **sampling)
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            replies += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = padding_side
    return replies


def behaviour_rates(model, tokenizer, questions: list[str], system_prompt: str | None, sample: bool, seed: int = 0) -> dict[str, float]:
    """The share of replies showing each behaviour, for one system prompt (None: no system turn)."""
    chats = [([{"role": "system", "content": system_prompt}] if system_prompt is not None else []) + [{"role": "user", "content": q}] for q in questions]
    replies = generate_replies(model, tokenizer, chats, sample, seed)
    return {b.name: round(sum(b.detect(r) for r in replies) / len(replies), 4) for b in corpus.BEHAVIOURS}


def verify(model, tokenizer, seed: int = 0) -> dict:
    """Rates for every condition (no prompt, an empty one, each behaviour alone, each combination),
    greedy and sampled; raises if any behaviour is missing where prompted or present where not."""
    questions = held_out_questions(seed)
    names = [b.name for b in corpus.BEHAVIOURS]
    canonical = {b.name: b.phrasings[0] for b in corpus.BEHAVIOURS}
    conditions: dict[str, tuple[str | None, frozenset[str]]] = {"none": (None, frozenset()), "empty": ("", frozenset())}
    for size in range(1, len(names) + 1):
        for combo in itertools.combinations(names, size):
            conditions["+".join(combo)] = (" ".join(canonical[name] for name in combo), frozenset(combo))
    report: dict = {"questions": len(questions)}
    failures = []
    for mode in ("greedy", "sampled"):
        report[mode] = {}
        for label, (prompt, expected) in conditions.items():
            rates = behaviour_rates(model, tokenizer, questions, prompt, sample=mode == "sampled", seed=seed)
            report[mode][label] = rates
            for name, rate in rates.items():
                if (name in expected and rate < MIN_WITH_PROMPT) or (name not in expected and rate > MAX_WITHOUT_PROMPT):
                    failures.append(f"{mode} {label}: {name} at {rate:.0%}")
    if failures:
        raise RuntimeError("The toy model failed its behaviour check: " + "; ".join(failures))
    return report
