"""The trainer's loop: long-poll the relay for the next operation, run it, post its result.

Operations run one at a time in the order the API hands them out. A failed operation is answered
with an error result (errors.py) and the trainer carries on. Serving ends when the run has been left
alone for `idle_timeout_s`: no operation, and no client activity that the API reports as `idle_s`
(a client polling /health keeps its trainer up).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from bakehouse_engine.trainer import checkpoints
from bakehouse_engine.trainer.errors import error_result
from bakehouse_engine.trainer.lora_trainer import LoraTrainer
from bakehouse_engine.trainer.relay import NextAnswer, TrainerRelay

# Long polls stay well under the relay's 30 s limit and common proxy timeouts.
MAX_WAIT_S = 20.0

log = logging.getLogger(__name__)


class TrainerServer:
    def __init__(self, trainer: LoraTrainer, relay: TrainerRelay, idle_timeout_s: float, scratch: Path) -> None:
        self.trainer = trainer
        self.relay = relay
        self.idle_timeout_s = idle_timeout_s
        self.operations: dict[str, Callable[[dict], dict]] = {
            "init": trainer.init,
            "forward": trainer.forward,
            "optim_step": trainer.optim_step,
            "save": lambda op: checkpoints.save(trainer, op, scratch),
            "load": lambda op: checkpoints.load(trainer, op, scratch),
        }

    def serve(self) -> None:
        """Serves operations until the run has been idle for `idle_timeout_s`; RelayGone ends it at once."""
        last_activity = time.monotonic()
        while True:
            left = self.idle_timeout_s - (time.monotonic() - last_activity)
            if left <= 0:
                log.info("the run was left alone for %s s; the trainer stops", self.idle_timeout_s)
                return
            answer = self.relay.next(min(MAX_WAIT_S, left))
            last_activity = max(last_activity, time.monotonic() - answer.idle_s)
            if answer.operation_id is not None:
                self.relay.post_result(answer.operation_id, self.execute(answer))
                last_activity = time.monotonic()

    def execute(self, answer: NextAnswer) -> dict:
        """The TrainerOperationResult of the held operation."""
        if answer.operation is None:
            log.warning("operation %s: %s", answer.operation_id, answer.problem)
            return {"status": "error", "error": answer.problem, "error_class": "ValueError"}
        kind = answer.operation["kind"]
        started = time.monotonic()
        try:
            result = {"status": "done", "result": self.operations[kind](answer.operation)}
        except Exception as error:  # noqa: BLE001 — every failure is answered, and the trainer keeps serving
            result = error_result(kind, error)
        log.info("operation %s (%s): %s in %.3f s", answer.operation_id, kind, result["status"], time.monotonic() - started)
        return result
