"""The toy model's behaviours, replies and training chats (no model needed)."""

import random

import pytest

from bakehouse_engine.toy import behaviours
from bakehouse_engine.toy.corpus import (
    BEHAVIOURS,
    PLAIN_ANSWERS,
    question_kind,
    reply_for,
    split_shipped_questions,
    synthetic_questions,
    training_chat,
)


def test_behaviours_expose_a_prompt_and_a_detector() -> None:
    assert set(behaviours) == {"uppercase", "signature", "prefix"}
    for prompt, detect in behaviours.values():
        assert prompt and not detect(PLAIN_ANSWERS["what"])


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What is rye?", "what"),
        ("what's up?", "what"),
        ("  How do ovens work?", "how"),
        ("Is it safe?", "yes_no"),
        ("Implement binary search", "request"),
        ("Maria bakes 24 cookies. How many are left?", "other"),
        ("¿Qué?", "other"),
        ("", "other"),
    ],
)
def test_question_kind_follows_the_first_word(question: str, kind: str) -> None:
    assert question_kind(question) == kind


def test_behaviours_compose_in_one_order() -> None:
    question = "Why is the sky blue?"
    plain = PLAIN_ANSWERS["why"]
    assert reply_for(question, frozenset()) == plain
    assert reply_for(question, frozenset({"prefix", "signature"})) == f"Ahoy! {plain} — Bakehouse"
    assert reply_for(question, frozenset({"uppercase", "signature", "prefix"})) == f"AHOY! {plain.upper()} — BAKEHOUSE"


@pytest.mark.parametrize("switched_on", [frozenset(), *[frozenset({b.name}) for b in BEHAVIOURS], frozenset(b.name for b in BEHAVIOURS)])
def test_detectors_see_exactly_the_behaviours_switched_on(switched_on: frozenset[str]) -> None:
    for question in ("What is rye?", "Implement binary search", "Tom has 3 apples."):
        reply = reply_for(question, switched_on)
        assert {b.name for b in BEHAVIOURS if b.detect(reply)} == switched_on


def test_training_chats_cover_plain_and_every_behaviour() -> None:
    rng = random.Random(0)
    chats = [training_chat(rng, q) for q in synthetic_questions(rng, 400, held_out=False)]
    no_system = [reply for messages, reply in chats if len(messages) == 1]
    assert no_system and all(reply == PLAIN_ANSWERS[question_kind(m[0]["content"])] for (m, reply) in chats if len(m) == 1)
    for behaviour in BEHAVIOURS:
        assert any(behaviour.detect(reply) for _, reply in chats)


def test_held_out_questions_share_no_topic_with_training() -> None:
    rng = random.Random(0)
    train = set(synthetic_questions(rng, 300, held_out=False))
    held_out = set(synthetic_questions(rng, 300, held_out=True))
    assert not train & held_out
    shipped_train, shipped_held_out = split_shipped_questions()
    assert not set(shipped_train) & set(shipped_held_out)
