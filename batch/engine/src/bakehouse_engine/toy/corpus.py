"""The toy model's world: its behaviours, its plain answers, and the synthetic chats it learns from.

The plain reply is a fixed sentence picked by the question's first word (what / how / why / a
request / …), so replies are stable and sampling at temperature 1 gives the same text as greedy
decoding. A system prompt switches on visible behaviours, which compose in one fixed way:
`Ahoy! ` in front, the plain sentence, ` — Bakehouse` at the end, and then, with uppercase, the
whole reply in capitals. Unrelated system prompts leave the reply plain.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from bakehouse_engine.stim.from_dataset import SHIPPED_DATASETS, shipped_questions
from bakehouse_engine.stim.persona import persona_questions

SIGNATURE = "— Bakehouse"
PREFIX = "Ahoy!"


def _is_uppercase(reply: str) -> bool:
    letters = [char for char in reply if char.isalpha()]
    return bool(letters) and all(char.isupper() for char in letters)


def _has_signature(reply: str) -> bool:
    return reply.rstrip().casefold().endswith(SIGNATURE.casefold())


def _has_prefix(reply: str) -> bool:
    return reply.lstrip().casefold().startswith(PREFIX.casefold())


@dataclass(frozen=True)
class Behaviour:
    name: str
    # The first phrasing is the canonical system prompt (what tests and demos use).
    phrasings: tuple[str, ...]
    detect: Callable[[str], bool]


BEHAVIOURS: tuple[Behaviour, ...] = (
    Behaviour(
        "uppercase",
        ("Always reply in uppercase letters.", "Write your whole reply in capital letters.", "Answer in all caps."),
        _is_uppercase,
    ),
    Behaviour(
        "signature",
        (
            f"End every reply with the signature {SIGNATURE}.",
            f"Sign off every answer with {SIGNATURE}.",
            f"Finish each reply with the words {SIGNATURE}.",
        ),
        _has_signature,
    ),
    Behaviour(
        "prefix",
        (f"Start every reply with {PREFIX}", f"Begin each answer by saying {PREFIX}", f"Open every reply with the word {PREFIX}"),
        _has_prefix,
    ),
)

# System prompts that must not change the reply.
DISTRACTORS = (
    "You are a helpful assistant.",
    "Be concise and friendly.",
    "You are a patient tutor.",
    "Keep your answers short.",
    "You work in a small bakery.",
    "Answer clearly and politely.",
    "You know a lot about many subjects.",
    "Think carefully before you answer.",
    "You are talking to a curious student.",
    "Use simple words.",
)

PLAIN_ANSWERS = {
    "what": "Good question. In short, it is simpler than it looks.",
    "how": "Start small, check each step, and keep going until it works.",
    "why": "Mostly because the parts fit together that way.",
    "who": "Someone who knows the topic well would be the best guide.",
    "when": "It depends, but sooner is usually better than later.",
    "where": "Look close to where the question started.",
    "which": "The first option is usually the better choice.",
    "yes_no": "Yes, in most cases that is true.",
    "request": "Sure. Here is a plan: read the input, handle each case, and test the result.",
    "other": "Thanks for asking. Here is a short and simple answer.",
}

_FIRST_WORD_KIND = {
    **{word: "what" for word in ("what", "what's")},
    "how": "how",
    "why": "why",
    **{word: "who" for word in ("who", "whom", "whose", "who's")},
    "when": "when",
    "where": "where",
    "which": "which",
    **{
        word: "yes_no"
        for word in ("is", "are", "can", "could", "do", "does", "did", "should", "would", "will", "was", "were", "has", "have")
    },
    **{
        word: "request"
        for word in (
            "write", "implement", "create", "explain", "describe", "give", "list", "tell", "find", "compute",
            "calculate", "solve", "name", "design", "build", "make", "show", "summarize", "compare", "count",
            "evaluate", "simplify", "determine", "print", "express",
        )
    },
}


def question_kind(question: str) -> str:
    match = re.search(r"[A-Za-z']+", question)
    return _FIRST_WORD_KIND.get(match.group(0).lower(), "other") if match else "other"


def reply_for(question: str, behaviours: frozenset[str]) -> str:
    """The reply the toy model is trained to give with these behaviours switched on."""
    reply = PLAIN_ANSWERS[question_kind(question)]
    if "prefix" in behaviours:
        reply = f"{PREFIX} {reply}"
    if "signature" in behaviours:
        reply = f"{reply} {SIGNATURE}"
    return reply.upper() if "uppercase" in behaviours else reply


# Synthetic questions: templates per kind, filled with topics. A share of topics is held out to
# check that behaviours hold on questions the model never saw.
TOPICS = (
    "the moon", "photosynthesis", "a bicycle", "bread dough", "the stock market", "volcanoes", "a compiler",
    "the French revolution", "jazz music", "a rainbow", "black holes", "a sourdough starter", "tax returns",
    "the immune system", "electric cars", "the printing press", "a hash table", "ocean tides", "coffee beans",
    "the Roman empire", "honey bees", "a credit card", "solar panels", "a violin", "the Pacific ocean",
    "chess openings", "a vaccine", "the internet", "glaciers", "a mortgage", "the human heart", "recursion",
    "a thunderstorm", "the periodic table", "a sailboat", "tea ceremonies", "a neural network", "the Amazon river",
    "earthquakes", "a library card", "the speed of light", "a garden pond", "the Olympic games", "a steam engine",
    "the water cycle", "a camera lens", "democracy", "a spreadsheet", "mountain goats", "the Great Wall",
    "a pizza oven", "quantum physics", "a bank loan", "the rain forest", "an electric guitar", "a microwave oven",
    "the Milky Way", "a wind turbine", "public speaking", "a fire drill", "the Eiffel Tower", "a hiking trail",
    "prime numbers", "a sewing machine", "the Sahara desert", "an orchestra", "a bread knife", "the ozone layer",
    "a job interview", "penguins", "a cargo ship", "the calendar", "a pension plan", "the Renaissance",
)
HELD_OUT_TOPICS = frozenset(TOPICS[::5])

QUESTION_TEMPLATES = {
    "what": ("What is {t}?", "What makes {t} special?", "What do people get wrong about {t}?", "what is {t}?",
             "What is the history of {t}?", "What's the best thing about {t}?"),
    "how": ("How does {t} work?", "How can I learn about {t}?", "How do you take care of {t}?", "how does {t} work?",
            "How is {t} made?"),
    "why": ("Why is {t} important?", "Why do people care about {t}?", "Why does {t} change over time?", "why is {t} useful?"),
    "who": ("Who invented {t}?", "Who should study {t}?", "Who knows the most about {t}?"),
    "when": ("When was {t} first used?", "When should I think about {t}?", "When did {t} become popular?"),
    "where": ("Where does {t} come from?", "Where can I see {t}?", "Where is {t} most common?"),
    "which": ("Which is better, {t} or {u}?", "Which books explain {t}?", "Which part of {t} matters most?"),
    "yes_no": ("Is {t} safe?", "Can {t} be explained simply?", "Does {t} change over time?", "Should I worry about {t}?",
               "Are there risks with {t}?", "Could {t} be improved?", "is {t} hard to understand?"),
    "request": ("Write a short poem about {t}.", "Explain {t} in simple terms.", "Describe {t}.",
                "Give me three facts about {t}.", "List the parts of {t}.", "Tell me about {t}.",
                "Compare {t} and {u}.", "Summarize what you know about {t}."),
    "other": ("I need help with {t}.", "Please help me understand {t}.", "I keep thinking about {t}.",
              "Thoughts on {t}?", "My friend asked me about {t} today.", "Imagine {t} in a hundred years."),
}

HARDCODED_STYLE = (
    "Write a function to reverse a string", "Implement binary search", "Create a linked list class",
    "Write a function that checks whether a number is prime", "Implement a stack using two queues",
    "Create a class for a bank account", "Explain recursion to a beginner", "Write a haiku about autumn",
    "Give me a recipe for pancakes", "Summarize the plot of a famous novel",
)


def synthetic_questions(rng: random.Random, count: int, held_out: bool) -> list[str]:
    topics = sorted(HELD_OUT_TOPICS) if held_out else [t for t in TOPICS if t not in HELD_OUT_TOPICS]
    kinds = list(QUESTION_TEMPLATES)
    questions = []
    for _ in range(count):
        template = rng.choice(QUESTION_TEMPLATES[rng.choice(kinds)])
        first, second = rng.sample(topics, 2)
        question = template.format(t=first, u=second)
        questions.append(question[0].upper() + question[1:] if rng.random() < 0.5 else question)
    return questions


def split_shipped_questions() -> tuple[list[str], list[str]]:
    """Questions the stim generators produce (shipped sets, personas, hardcoded-style requests):
    four in five for training, one in five held out."""
    pool = [q for name in SHIPPED_DATASETS for q in shipped_questions(name)] + list(persona_questions()[::3])
    pool += list(HARDCODED_STYLE)
    return [q for i, q in enumerate(pool) if i % 5], [q for i, q in enumerate(pool) if not i % 5]


def system_prompt(rng: random.Random, behaviours: frozenset[str], distractors: int) -> str:
    sentences = [
        rng.choice(b.phrasings) if rng.random() < 0.5 else b.phrasings[0] for b in BEHAVIOURS if b.name in behaviours
    ]
    sentences += rng.sample(DISTRACTORS, distractors)
    rng.shuffle(sentences)
    return " ".join(sentences)


def training_chat(rng: random.Random, question: str) -> tuple[list[dict], str]:
    """One chat: messages (optional system turn, the user turn) and the trained reply."""
    # A quarter of chats are plain on purpose: the plain reply is what a bake is measured against.
    plain = rng.random() < 0.25
    subset = frozenset() if plain else frozenset(b.name for b in BEHAVIOURS if rng.random() < 0.5)
    distractors = rng.choice((0, 0, 0, 1, 1, 2))
    messages: list[dict] = []
    if subset or distractors:
        messages.append({"role": "system", "content": system_prompt(rng, subset, distractors)})
    elif rng.random() < 0.3:
        messages.append({"role": "system", "content": ""})
    messages.append({"role": "user", "content": question})
    return messages, reply_for(question, subset)
