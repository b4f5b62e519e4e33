"""Trains the toy instruct model: a small LlamaForCausalLM on the synthetic chats of corpus.py.

Seeded and CPU-only (two threads), so every machine builds the same kind of model in minutes.
The build checks itself (evaluate.py) before it writes the manifest that marks it as built: a
model whose behaviours are not crisp would make every bake test downstream meaningless.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from bakehouse_engine.toy import corpus
from bakehouse_engine.toy.cache import MANIFEST, TOY_MODEL_NAME, TOY_MODEL_VERSION
from bakehouse_engine.toy.evaluate import verify
from bakehouse_engine.toy.tokenizer import train_tokenizer

log = logging.getLogger(__name__)

TRAIN_THREADS = 2
SYNTHETIC_QUESTIONS = 6000
SHIPPED_REPEATS = 4
STEPS = 900
BATCH_SIZE = 48
PEAK_LR = 3e-3
WARMUP_STEPS = 60


def toy_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_toy_model(out_dir: Path, seed: int = 0) -> None:
    """Trains, verifies and saves the toy model (transformers layout: config, weights, tokenizer)."""
    started = time.monotonic()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    # As the loss nears zero, gradients and Adam's moments turn denormal, and denormal arithmetic
    # on x86 CPUs is many times slower; flushing them to zero costs nothing at this precision.
    torch.set_flush_denormal(True)
    try:
        rng = random.Random(seed)
        torch.manual_seed(seed)
        train_questions, _ = corpus.split_shipped_questions()
        questions = corpus.synthetic_questions(rng, SYNTHETIC_QUESTIONS, held_out=False)
        questions += train_questions * SHIPPED_REPEATS
        chats = [corpus.training_chat(rng, question) for question in questions]
        tokenizer = train_tokenizer(_tokenizer_texts(chats))
        examples = [_encode(tokenizer, messages, reply) for messages, reply in chats]
        model = LlamaForCausalLM(toy_config(tokenizer))
        final_loss = _train(model, examples, tokenizer.pad_token_id, rng)
        model.generation_config = GenerationConfig(
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, max_new_tokens=64
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        # Saved first so a model that fails the check can be inspected; without the manifest the
        # cache does not take it as built.
        report = verify(model, tokenizer, seed)
        manifest = {
            "name": TOY_MODEL_NAME,
            "version": TOY_MODEL_VERSION,
            "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_train_loss": final_loss,
            "build_seconds": round(time.monotonic() - started, 1),
            "verification": report,
        }
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_flush_denormal(False)


def _tokenizer_texts(chats: list[tuple[list[dict], str]]) -> list[str]:
    texts = [message["content"] for messages, _ in chats for message in messages if message["content"]]
    texts += [reply for _, reply in chats]
    # Capitalised questions too, so an uppercase question still tokenizes into few pieces.
    texts += [message["content"].upper() for messages, _ in chats[::4] for message in messages]
    return texts


def _encode(tokenizer: PreTrainedTokenizerFast, messages: list[dict], reply: str) -> tuple[list[int], int]:
    """Token ids of prompt + reply + EOS, and the prompt's length (only the reply is trained)."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    answer = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return list(prompt) + answer, len(prompt)


def _train(model: LlamaForCausalLM, examples: list[tuple[list[int], int]], pad_id: int, rng: random.Random) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=PEAK_LR, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step))
    model.train()
    batches = _batches(examples, pad_id, rng)
    recent: list[float] = []
    for step in range(STEPS):
        input_ids, attention_mask, targets = next(batches)
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # Project only the reply positions: the LM head is most of the cost and prompts are not trained.
        trained = targets != -100
        logits = model.lm_head(hidden[trained])
        loss = torch.nn.functional.cross_entropy(logits, targets[trained])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        recent = (recent + [loss.item()])[-50:]
        if (step + 1) % 100 == 0:
            log.info("toy model: step %d/%d, loss %.5f", step + 1, STEPS, sum(recent) / len(recent))
    model.eval()
    return round(sum(recent) / len(recent), 6)


def _lr_factor(step: int) -> float:
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, STEPS - WARMUP_STEPS)
    return 0.02 + 0.98 * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())


def _batches(examples: list[tuple[list[int], int]], pad_id: int, rng: random.Random):
    """Endless batches of similar-length examples (less padding), in random order."""
    while True:
        order = list(examples)
        rng.shuffle(order)
        chunk = BATCH_SIZE * 32
        batches = []
        for start in range(0, len(order), chunk):
            group = sorted(order[start : start + chunk], key=lambda example: len(example[0]))
            batches += [group[i : i + BATCH_SIZE] for i in range(0, len(group), BATCH_SIZE)]
        rng.shuffle(batches)
        for batch in batches:
            yield _collate(batch, pad_id)


def _collate(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        # Position t predicts token t + 1: the targets are the reply tokens, shifted left by one.
        targets[row, prompt_length - 1 : len(ids) - 1] = torch.tensor(ids[prompt_length:])
    return input_ids, attention_mask, targets
