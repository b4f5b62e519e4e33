"""How a failed operation is reported: `{status: 'error', error, error_class}` (functions/schemas/trainer.ts).

An operation's failure is the client's to read, so its sentence says what to change and never
carries a traceback or a path; the trainer logs the detail and keeps serving.
"""

from __future__ import annotations

import logging

from bakehouse_engine.errors import out_of_memory

log = logging.getLogger(__name__)


class InvalidInput(ValueError):
    """The operation's input is wrong in a way only the engine can see (shapes, token ids, a saved state)."""


def error_result(kind: str, error: Exception) -> dict:
    """The TrainerOperationResult for an operation of `kind` that raised `error`."""
    if isinstance(error, InvalidInput):
        return {"status": "error", "error": str(error), "error_class": "ValueError"}
    if out_of_memory(error):
        sentence = f"The trainer ran out of memory running {kind}; send fewer or shorter sequences per call and try again."
    else:
        log.error("%s failed on an unexpected engine error", kind, exc_info=error)
        sentence = (
            f"The trainer failed on an unexpected engine error ({type(error).__name__}) running {kind}; its log has the "
            "details. Try again, and report the problem if it keeps failing."
        )
    return {"status": "error", "error": sentence, "error_class": "RuntimeError"}
