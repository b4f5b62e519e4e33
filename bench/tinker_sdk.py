"""The Tinker benchmark's client side (bench/tinker.ts runs it with the tinker 0.38.0 SDK's python,
test/clients/tinker/setup_env.sh).

- `request <dir>`: one forward_backward request of about 1 MiB of protobuf, as the SDK sends it
  (its own encoder, then zstd as with `proto_compress_fwdbwd`), to `request.binpb.zst`; and the
  same request as the JSON body SDKs up to 0.24 send, to `request.json`.
- `rounds`: against a local server (TINKER_BASE_URL, TINKER_API_KEY), `forward_backward` +
  `optim_step` submitted back to back and both results back, as a training loop does, for a
  batch of a few hundred tokens and one of 4,096. bench/tinker.ts pairs each round with the engine's own time for
  the same two operations, from the trainer's log, in execution order.

Prints one JSON object.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import tinker
import zstandard
from tinker import types
from tinker.proto.request_conv import forward_backward_request_to_proto

BASE_MODEL = "bakehouse/toy-instruct"
VOCAB = 2048  # the toy model's vocabulary
RANK = 8
# (datums, tokens per datum, timed rounds) of the timed loops: a few hundred tokens, and 4,096.
BATCHES = {"small": (8, 32, 8), "4k_tokens": (16, 256, 4)}
WARM_UP_ROUNDS = 1
# The decoded request: 64 rows of 1,023 tokens (the toy model's context is 1,024) make about
# 1 MiB of protobuf (int32 tokens, int64 targets, float32 weights). On two CPU cores the toy
# model's trainer takes minutes per step on it, so the timed loops use smaller batches.
REQUEST_BATCH = (64, 1023)
TIMEOUT_S = 300


def datum(rng: random.Random, tokens: int) -> types.Datum:
    sequence = [rng.randrange(5, VOCAB) for _ in range(tokens + 1)]
    return types.Datum(
        model_input=types.ModelInput.from_ints(sequence[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData(data=sequence[1:], dtype="int64", shape=[tokens]),
            "weights": types.TensorData(data=[1.0] * tokens, dtype="float32", shape=[tokens]),
        },
    )


def batch(name: str, count: int, tokens: int) -> list[types.Datum]:
    rng = random.Random(name)
    return [datum(rng, tokens) for _ in range(count)]


def json_body(data: list[types.Datum]) -> dict:
    """The body SDKs up to 0.24 POST to /api/v1/forward_backward."""
    return {
        "forward_backward_input": {
            "data": [
                {
                    "model_input": {"chunks": [{"type": "encoded_text", "tokens": d.model_input.to_ints()}]},
                    "loss_fn_inputs": {
                        name: {"data": list(t.data), "dtype": t.dtype, "shape": list(t.shape or [])} for name, t in d.loss_fn_inputs.items()
                    },
                }
                for d in data
            ],
            "loss_fn": "cross_entropy",
        },
        "model_id": "bench:train:0",
        "seq_id": 1,
        "type": "forward_backward",
    }


def write_request(out: Path) -> dict:
    data = batch("request", *REQUEST_BATCH)
    request = types.ForwardBackwardRequest(
        forward_backward_input=types.ForwardBackwardInput(data=data, loss_fn="cross_entropy"), model_id="bench:train:0", seq_id=1
    )
    protobuf = forward_backward_request_to_proto(request).SerializeToString()
    compressed = zstandard.ZstdCompressor().compress(protobuf)
    text = json.dumps(json_body(data), separators=(",", ":"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "request.binpb.zst").write_bytes(compressed)
    (out / "request.json").write_text(text)
    return {"datums": len(data), "tokens": sum(d.model_input.length for d in data), "protobuf_bytes": len(protobuf), "zstd_bytes": len(compressed), "json_bytes": len(text.encode())}


def round_trips(training, data: list[types.Datum], rounds: int) -> list[float]:
    adam = types.AdamParams(learning_rate=1e-4)
    timed = []
    for index in range(WARM_UP_ROUNDS + rounds):
        started = time.monotonic()
        backward = training.forward_backward(data, "cross_entropy")
        step = training.optim_step(adam)
        backward.result(timeout=TIMEOUT_S)
        step.result(timeout=TIMEOUT_S)
        if index >= WARM_UP_ROUNDS:
            timed.append(round((time.monotonic() - started) * 1000, 2))
    return timed


def rounds() -> dict:
    service = tinker.ServiceClient()
    started = time.monotonic()
    training = service.create_lora_training_client(base_model=BASE_MODEL, rank=RANK).result(timeout=TIMEOUT_S)
    ready_ms = round((time.monotonic() - started) * 1000, 1)
    batches = {}
    for name, (count, tokens, timed) in BATCHES.items():
        batches[name] = {"datums": count, "tokens": count * tokens, "warm_up_rounds": WARM_UP_ROUNDS, "round_ms": round_trips(training, batch(name, count, tokens), timed)}
    service.close("success").result(timeout=TIMEOUT_S)
    return {"model_id": training.get_info().model_id, "create_lora_training_client_ms": ready_ms, "batches": batches}


if __name__ == "__main__":
    if sys.argv[1:2] == ["request"] and len(sys.argv) == 3:
        print(json.dumps(write_request(Path(sys.argv[2]))))
    elif sys.argv[1:] == ["rounds"]:
        print(json.dumps(rounds()))
    else:
        raise SystemExit(__doc__)
