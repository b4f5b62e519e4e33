"""The trainer's side of its relay (functions/schemas/trainer.ts): ready, the next operation, results.

Calls go through the sampler's retrying transport (RelayCalls): connection errors, 429 and 5xx are
retried with backoff for up to GIVE_UP_AFTER_S, 401 fails the job and 410 raises RelayGone.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from jsonschema.exceptions import ValidationError, best_match

from bakehouse_engine.errors import JobFailure
from bakehouse_engine.sampler.relay import RelayCalls
from bakehouse_engine.spec import contract_validator

# Beyond a long poll's own wait: time for the API to answer. Results can be large (a forward's
# log-probs for a 24 MiB batch), so posting them gets longer.
ANSWER_TIMEOUT_S = 15.0
RESULT_TIMEOUT_S = 120.0
CONTRACT_FILE = "trainer-next-response.schema.json"
KINDS = "init, forward, optim_step, save, load"


@dataclass
class NextAnswer:
    operation_id: str | None  # the held operation's id, also when it is invalid
    operation: dict | None  # the TrainerOperation, when it is valid
    problem: str | None  # why it is invalid: a sentence for its error result
    idle_s: float  # seconds since a client last used the run, as the API saw it


class TrainerRelay(RelayCalls):
    ROLE = "trainer"

    def ready(self, step: int, lora_config: dict) -> None:
        self._post("/ready", {"step": step, "lora_config": lora_config}, ANSWER_TIMEOUT_S)

    def next(self, wait_s: float) -> NextAnswer:
        answer = self._post("/next", {"wait_s": round(wait_s, 3)}, wait_s + ANSWER_TIMEOUT_S)
        if not isinstance(answer, dict) or not isinstance(answer.get("idle_s"), (int, float)) or "operation" not in answer:
            raise JobFailure(f"The relay's answer to /next is not a TrainerNextResponse: {str(answer)[:200]}")
        held = answer["operation"]
        if held is None:
            return NextAnswer(None, None, None, answer["idle_s"])
        operation_id = held.get("id") if isinstance(held, dict) and isinstance(held.get("id"), str) else None
        error = best_match(contract_validator(CONTRACT_FILE, "HeldOperation").iter_errors(_outline(held)))
        if error is None:
            return NextAnswer(operation_id, held["operation"], None, answer["idle_s"])
        if operation_id is None:
            raise JobFailure(f"The relay handed out an operation without an id: {str(held)[:200]}")
        return NextAnswer(operation_id, None, _describe(error), answer["idle_s"])

    def post_result(self, operation_id: str, result: dict) -> None:
        self._post(f"/operations/{quote(operation_id, safe='')}/result", result, RESULT_TIMEOUT_S)


def _describe(error: ValidationError) -> str:
    """A sentence for the most relevant violation. The operation is a union chosen by `kind`, so its
    violations are reported from the branch of its own kind rather than as "not valid under any"."""
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    if error.validator == "oneOf":
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context or []:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        own = [subs for subs in branches.values() if not any(list(sub.relative_path) == ["kind"] for sub in subs)]
        if len(own) != 1:
            return f"The operation has no kind this trainer knows; its kind must be one of {KINDS}."
        return _describe(best_match(own[0]))
    return f"The operation is invalid at {where}: {error.message[:300]}."


def _outline(held: dict) -> dict:
    """The held operation with a forward's long arrays cut to their first value, for schema validation.

    A forward can carry millions of numbers, which jsonschema takes many seconds to walk; their
    element types are checked when the rows are decoded (rows.py), the structure here.
    """
    operation = held.get("operation")
    if not isinstance(operation, dict) or operation.get("kind") != "forward" or not isinstance(operation.get("data"), list):
        return held
    return {**held, "operation": {**operation, "data": [_outline_datum(datum) for datum in operation["data"]]}}


def _outline_datum(datum: object) -> object:
    if not isinstance(datum, dict) or not isinstance(datum.get("tokens"), list) or not isinstance(datum.get("loss_fn_inputs"), dict):
        return datum
    inputs = {
        name: {**tensor, "data": tensor["data"][:1]} if isinstance(tensor, dict) and isinstance(tensor.get("data"), list) else tensor
        for name, tensor in datum["loss_fn_inputs"].items()
    }
    return {**datum, "tokens": datum["tokens"][:1], "loss_fn_inputs": inputs}
