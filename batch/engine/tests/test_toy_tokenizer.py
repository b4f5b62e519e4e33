"""The toy tokenizer's chat template: the format rollouts and bakes render chats with."""

import pytest

from bakehouse_engine.toy.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["What is rye?", "Always reply in uppercase letters.", "Good question. In short, it is simpler than it looks."]
    return train_tokenizer(texts * 20)


def test_chat_template_renders_turns_and_the_generation_prompt(tokenizer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is rye?"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is rye?<|end|>\n"
    )
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True).endswith(
        "<|user|>\nWhat is rye?<|end|>\n<|assistant|>\n"
    )


def test_content_parts_and_empty_content_render(tokenizer) -> None:
    messages = [
        {"role": "system", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": None},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|system|>\n<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n<|end|>\n"
    )


def test_a_reply_tokenizes_the_same_alone_as_after_the_prompt(tokenizer) -> None:
    """Rollouts append generated ids to the prompt's ids; bakes re-tokenize prompt + reply. Both
    must give the same ids, or the teacher and student would score different tokens."""
    messages = [{"role": "user", "content": "What is rye?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    reply = "Good question. In short, it is simpler than it looks."
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": reply}])
    assert list(full[: len(prompt) + len(reply_ids)]) == list(prompt) + reply_ids


def test_any_text_encodes_without_unknown_tokens(tokenizer) -> None:
    text = "Ünïcödé — 漢字 🙂"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.eos_token == "<|end|>" and tokenizer.pad_token == "<|pad|>"
