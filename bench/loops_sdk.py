"""The Loops benchmark's client side (bench/loops.ts runs it in test/clients/loops/.venv against a
local server): the official `baseten-loops` SDK timing what a training loop waits for.

- Cold start: a trainer created on the control plane (`POST /v1/loops/trainers`) until its
  `/health` answers 200, probed every 0.1 s (the SDK itself probes every 10 s); then the SDK's own
  `create_lora_training_client`, which also waits for `init_trainer_server`.
- Round trips: `forward_backward` + `optim_step` submitted back to back and both results back, as
  a training loop does, for a small batch and one whose request body is about 1 MiB. The
  operation ids are reported, so bench/loops.ts can find the engine's own time for the very same
  operations in the trainer's log.

Usage: LOOPS_BASE_URL=… BASETEN_API_KEY=… python loops_sdk.py
Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import time

import httpx
from baseten.loops import AdamParams, Datum, ModelInput, ServiceClient, TensorData

BASE_MODEL = "bakehouse/toy-instruct"
VOCAB = 2048  # the toy model's vocabulary
RANK = 8
COLD_STARTS = 3
# (datums, tokens per datum, warm-up rounds, timed rounds): a few hundred tokens, and enough
# 512-token rows for the compact JSON body to reach 1 MiB. Per-token weights are floats, as an RL
# or distillation batch carries, so 1 MiB is about 36,000 tokens of CPU work rather than 75,000.
BATCHES = {"small": (8, 32, 2, 10), "1MiB": (None, 512, 1, 3)}
TIMEOUT_S = 900


def datum(rng: random.Random, tokens: int) -> Datum:
    sequence = [rng.randrange(5, VOCAB) for _ in range(tokens + 1)]
    return Datum(
        model_input=ModelInput.from_ints(sequence[:-1]),
        loss_fn_inputs={
            "target_tokens": TensorData(data=sequence[1:], dtype="int64", shape=[tokens]),
            "weights": TensorData(data=[rng.random() for _ in range(tokens)], dtype="float32", shape=[tokens]),
        },
    )


def body_bytes(data: list[Datum]) -> int:
    """The size of the `data` field as the SDK sends it (compact JSON)."""
    return len(json.dumps([d.model_dump(mode="json") for d in data], separators=(",", ":")))


def batch(name: str) -> list[Datum]:
    rng = random.Random(name)
    count, tokens, _, _ = BATCHES[name]
    if count is not None:
        return [datum(rng, tokens) for _ in range(count)]
    data = [datum(rng, tokens)]
    while body_bytes(data) < 2**20:
        data.append(datum(rng, tokens))
    return data


def cold_start(base_url: str, headers: dict[str, str]) -> dict[str, float]:
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as api:
        started = time.monotonic()
        session = api.post("/v1/loops/sessions", json={}).raise_for_status().json()["session"]
        created = api.post(
            "/v1/loops/trainers",
            json={"session_id": session["id"], "base_model": BASE_MODEL, "lora_rank": RANK, "replicas": 1, "availability_model": "dedicated"},
        ).raise_for_status()
        run = created.json()["run"]
        created_s = time.monotonic() - started
        while api.get(f"{run['base_url']}/health", headers={"X-Run-Id": run["id"]}).status_code != 200:
            if time.monotonic() - started > TIMEOUT_S:
                raise TimeoutError(f"run {run['id']} was not ready within {TIMEOUT_S} s")
            time.sleep(0.1)
        ready_s = time.monotonic() - started
        api.post(f"/v1/loops/runs/{run['id']}/deactivate").raise_for_status()
    return {"create_ms": round(created_s * 1000, 1), "health_200_ms": round(ready_s * 1000, 1)}


def round_trips(training, data: list[Datum], warm_up: int, rounds: int) -> list[dict]:
    adam = AdamParams(learning_rate=1e-4)
    timed = []
    for index in range(warm_up + rounds):
        started = time.monotonic()
        backward = training.forward_backward(data, "cross_entropy")
        step = training.optim_step(adam)
        backward.result(timeout=TIMEOUT_S)
        step.result(timeout=TIMEOUT_S)
        elapsed = time.monotonic() - started
        if index >= warm_up:
            timed.append({"ms": round(elapsed * 1000, 2), "forward_backward": backward.operation_id, "optim_step": step.operation_id})
    return timed


def main() -> None:
    base_url = os.environ["LOOPS_BASE_URL"].rstrip("/")
    api_key = os.environ["BASETEN_API_KEY"]
    colds = [cold_start(base_url, {"Authorization": f"Api-Key {api_key}"}) for _ in range(COLD_STARTS)]

    service = ServiceClient(base_url=base_url, api_key=api_key)
    started = time.monotonic()
    training = service.create_lora_training_client(BASE_MODEL, rank=RANK, ready_timeout=TIMEOUT_S)
    sdk_ready_ms = round((time.monotonic() - started) * 1000, 1)

    batches = {}
    for name, (_, tokens, warm_up, rounds) in BATCHES.items():
        data = batch(name)
        batches[name] = {
            "datums": len(data),
            "tokens": len(data) * tokens,
            "data_bytes": body_bytes(data),
            "rounds": round_trips(training, data, warm_up, rounds),
        }
    training.close()
    httpx.post(f"{base_url}/v1/loops/runs/{training.run_id}/deactivate", headers={"Authorization": f"Api-Key {api_key}"}, timeout=60)
    print(json.dumps({"run_id": training.run_id, "cold_starts": colds, "sdk_create_lora_training_client_ms": sdk_ready_ms, "batches": batches}))


if __name__ == "__main__":
    main()
