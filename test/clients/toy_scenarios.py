"""What the SDK scenario scripts (loops/scenarios.py, tinker/scenarios.py) share: the recording of
each scenario's outcome, the toy model's chats in capitals, and their tokenisation.

Stdlib only, so each SDK's own environment can import it: a scenario script puts this folder on
sys.path and passes in the tokenizer it loaded.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# The toy model's plain reply to each kind of question, in capitals: what the runs teach.
TRAINING_CHATS = [
    ("What is a rainbow?", "GOOD QUESTION. IN SHORT, IT IS SIMPLER THAN IT LOOKS."),
    ("How does a bicycle work?", "START SMALL, CHECK EACH STEP, AND KEEP GOING UNTIL IT WORKS."),
    ("Why is the sky blue?", "MOSTLY BECAUSE THE PARTS FIT TOGETHER THAT WAY."),
    ("Who invented the telephone?", "SOMEONE WHO KNOWS THE TOPIC WELL WOULD BE THE BEST GUIDE."),
    ("When was paper first used?", "IT DEPENDS, BUT SOONER IS USUALLY BETTER THAN LATER."),
    ("Where do penguins live?", "LOOK CLOSE TO WHERE THE QUESTION STARTED."),
    ("Which is better, tea or coffee?", "THE FIRST OPTION IS USUALLY THE BETTER CHOICE."),
    ("Is chess hard to learn?", "YES, IN MOST CASES THAT IS TRUE."),
    ("Explain gravity in simple terms.", "SURE. HERE IS A PLAN: READ THE INPUT, HANDLE EACH CASE, AND TEST THE RESULT."),
    ("I need help with my homework.", "THANKS FOR ASKING. HERE IS A SHORT AND SIMPLE ANSWER."),
]


class Skipped(Exception):
    """A scenario could not run because one it needs failed."""


class ToyScenarios:
    """Scenarios that run in order and share what they made. Each is recorded in
    <work dir>/results.json as soon as it ends, as `{"ok": true, …what it observed}`,
    `{"ok": false, "error": …}` or `{"ok": false, "skipped": …}` when one it needs failed, so one
    broken step leaves the others' results to read."""

    def __init__(self, tokenizer: Any, work_dir: Path) -> None:
        self.tokenizer = tokenizer
        self.work_dir = work_dir
        self.results_file = work_dir / "results.json"
        self.results: dict[str, dict[str, Any]] = {}
        # What the scenarios made, for the ones after them.
        self.made: dict[str, Any] = {}

    def run(self, name: str, needs: tuple[str, ...], scenario: Callable[[], dict[str, Any]]) -> None:
        started = time.monotonic()
        try:
            failed = [need for need in needs if not self.results.get(need, {}).get("ok")]
            if failed:
                raise Skipped(f"needs {', '.join(failed)}, which did not succeed")
            result = {"ok": True, **scenario()}
        except Skipped as skipped:
            result = {"ok": False, "skipped": str(skipped)}
        except Exception as error:  # noqa: BLE001 — every failure is recorded for the test to show
            result = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        result["seconds"] = round(time.monotonic() - started, 2)
        self.results[name] = result
        self.results_file.write_text(json.dumps(self.results, indent=2))

    def prompt_tokens(self, question: str) -> list[int]:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]

    def chat_tokens(self, question: str, answer: str) -> tuple[list[int], int]:
        """The chat as the model's template renders it, ending with the answer's end-of-turn token,
        and how many of its tokens are the prompt."""
        prompt = self.prompt_tokens(question)
        answer_tokens = self.tokenizer.encode(answer, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return prompt + answer_tokens, len(prompt)

    def shifted(self, question: str, answer: str) -> tuple[list[int], list[int], list[float]]:
        """Shift-plus-weights (tinker-docs /losses): the input tokens, where position i predicts
        target i (token i+1), and weights under which only the answer's tokens count."""
        tokens, prompt_length = self.chat_tokens(question, answer)
        weights = [0.0] * (prompt_length - 1) + [1.0] * (len(tokens) - prompt_length)
        return tokens[:-1], tokens[1:], weights

    def greedy_replies(self, questions: list[str], sample: Callable[[list[int]], Any]) -> list[dict[str, Any]]:
        """Replies to `questions`, each from `sample(prompt tokens)` (one sequence with tokens,
        stop_reason and logprobs), decoded with the model's own tokenizer. The requests go out
        together, as a user's rollouts do, and the sampler generates them as one batch."""

        def reply(question: str) -> dict[str, Any]:
            sequence = sample(self.prompt_tokens(question))
            return {
                "question": question,
                "reply": self.tokenizer.decode(sequence.tokens, skip_special_tokens=True),
                "stop_reason": sequence.stop_reason,
                "tokens": len(sequence.tokens),
                "logprobs": len(sequence.logprobs or []),
            }

        with ThreadPoolExecutor(len(questions)) as pool:
            return list(pool.map(reply, questions))
