"""The stock tinker SDK's own protobuf code (tinker/proto: request_conv, response_conv and the
generated tinker_public_pb2), as the reference Bakehouse's codec is checked against
(functions/http/routes/tinker/proto/codec.test.ts).

Usage, with a tinker SDK environment's python (test/clients/tinker/setup_env.sh):

  python proto_conformance.py fixtures <dir>   the SDK's descriptor and forward_backward requests
                                               it encodes (plain and zstd, as it sends them), each
                                               with the dense content the server should read from it
  python proto_conformance.py decode <kind> <file>
                                               a sample or forward_backward result decoded by the
                                               SDK (kind: sample | forward_backward), as JSON on
                                               stdout: what the SDK's caller would see
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from tinker import types
from tinker.proto import response_conv, tinker_public_pb2
from tinker.proto.request_conv import forward_backward_request_to_proto


def datum(tokens: list[int], inputs: dict[str, types.TensorData]) -> types.Datum:
    return types.Datum(model_input=types.ModelInput.from_ints(tokens), loss_fn_inputs=inputs)


def requests() -> dict[str, tuple[types.ForwardBackwardRequest, bool]]:
    """Requests the SDK would send, each with its forward_only flag."""
    supervised = [
        datum(
            [1, 2, 3, 70000, 5],
            {
                "target_tokens": types.TensorData(data=[2, 3, 70000, 5, 6], dtype="int64", shape=[5]),
                "weights": types.TensorData(data=[0.0, 0.0, 1.0, 1.0, 0.5], dtype="float32", shape=[5]),
            },
        ),
        # The SDK's plain lists: target_tokens int64, weights float32, no shapes given.
        datum([7, 8], {"target_tokens": [8, 9], "weights": [1.0, 1.0]}),
    ]
    # Top-K soft targets, sent sparse as the SDK sends a 2-D tensor that is mostly zeros.
    distillation = [
        datum(
            [10, 11, 12],
            {
                "target_tokens": types.TensorData(
                    data=np.array([11, 40, 12], dtype=np.int64),
                    dtype="int64",
                    shape=[3, 4],
                    sparse_crow_indices=[0, 2, 3, 3],
                    sparse_col_indices=[0, 3, 1],
                ),
                "weights": types.TensorData(
                    data=np.array([0.75, 0.25, 1.0], dtype=np.float32),
                    dtype="float32",
                    shape=[3, 4],
                    sparse_crow_indices=[0, 2, 3, 3],
                    sparse_col_indices=[0, 3, 1],
                ),
            },
        )
    ]
    policy = [
        datum(
            [3, 4, 5],
            {
                "target_tokens": types.TensorData(data=[4, 5, 6], dtype="int64", shape=[3]),
                "logprobs": types.TensorData(data=[-0.5, -1.25, -2.0], dtype="float32", shape=[3]),
                "advantages": types.TensorData(data=[1.0, 1.0, -0.5], dtype="float32", shape=[3]),
            },
        )
    ]

    def request(data: list[types.Datum], loss_fn: str, config: dict[str, Any] | None, seq_id: int) -> types.ForwardBackwardRequest:
        return types.ForwardBackwardRequest(
            forward_backward_input=types.ForwardBackwardInput(data=data, loss_fn=loss_fn, loss_fn_config=config),
            model_id="session-1:train:0",
            seq_id=seq_id,
        )

    return {
        "cross_entropy": (request(supervised, "cross_entropy", None, 1), False),
        "sparse_forward_only": (request(distillation, "cross_entropy", None, 2), True),
        "ppo_config": (request(policy, "ppo", {"clip_low_threshold": 0.7, "clip_high_threshold": 1.3}, 7), False),
    }


def dense(tensor: types.TensorData) -> dict[str, Any]:
    """What the server should read: the tensor dense, row-major, in the wire's dtype."""
    values = np.asarray(tensor.data)
    shape = list(tensor.shape) if tensor.shape is not None else [len(values)]
    if tensor.sparse_crow_indices is not None:
        full = np.zeros(shape, dtype=values.dtype)
        crow, col = tensor.sparse_crow_indices, tensor.sparse_col_indices
        for row in range(shape[0]):
            for at in range(crow[row], crow[row + 1]):
                full[row, col[at]] = values[at]
        values = full.reshape(-1)
    cast = np.float32 if tensor.dtype == "float32" else np.int64
    return {"data": [float(v) if tensor.dtype == "float32" else int(v) for v in values.astype(cast)], "dtype": tensor.dtype, "shape": shape}


def write_fixtures(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "sdk-descriptor.binpb").write_bytes(tinker_public_pb2.DESCRIPTOR.serialized_pb)
    for name, (request, forward_only) in requests().items():
        message = forward_backward_request_to_proto(request)
        message.forward_only = forward_only
        body = message.SerializeToString()
        (out / f"{name}.binpb").write_bytes(body)
        # The SDK's own compression (resources/training.py), as sent with proto_compress_fwdbwd.
        (out / f"{name}.binpb.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
        fb_input = request.forward_backward_input
        expected = {
            "model_id": request.model_id,
            "seq_id": request.seq_id,
            "loss_fn": fb_input.loss_fn,
            "loss_fn_config": dict(fb_input.loss_fn_config) if fb_input.loss_fn_config else None,
            "forward_only": forward_only,
            "data": [
                {
                    "tokens": d.model_input.to_ints(),
                    "loss_fn_inputs": {key: dense(tensor) for key, tensor in d.loss_fn_inputs.items()},
                }
                for d in fb_input.data
            ],
        }
        (out / f"{name}.json").write_text(json.dumps(expected, indent=1) + "\n")
    # 2 KB that expand to 65 MiB of zeros: more than a server should take from one request.
    (out / "oversized.binpb.zst").write_bytes(zstandard.ZstdCompressor(level=19).compress(bytes(65 * 1024 * 1024)))


def number(value: float) -> float | None:
    return None if math.isnan(value) else value


def decode(kind: str, body: bytes) -> dict[str, Any]:
    if kind == "sample":
        response = response_conv.deserialize_sample_response(body)
        return {
            "sequences": [
                {"stop_reason": s.stop_reason, "tokens": list(s.tokens), "logprobs": None if s.logprobs is None else list(s.logprobs)}
                for s in response.sequences
            ],
            "prompt_logprobs": response.prompt_logprobs,
            "topk_prompt_logprobs": None
            if response.topk_prompt_logprobs is None
            else [None if row is None else [[int(t), float(lp)] for t, lp in row] for row in response.topk_prompt_logprobs],
        }
    if kind == "forward_backward":
        output = response_conv.deserialize_forward_backward_output(body)
        return {
            "loss_fn_output_type": output.loss_fn_output_type,
            "metrics": output.metrics,
            "loss_fn_outputs": [
                {
                    name: {"dtype": t.dtype, "shape": list(t.shape), "data": [number(float(v)) if t.dtype == "float32" else int(v) for v in t.data]}
                    for name, t in outputs.items()
                }
                for outputs in output.loss_fn_outputs
            ],
        }
    raise SystemExit(f"unknown kind {kind}: use sample or forward_backward")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "fixtures" and len(sys.argv) == 3:
        write_fixtures(Path(sys.argv[2]))
    elif command == "decode" and len(sys.argv) == 4:
        print(json.dumps(decode(sys.argv[2], Path(sys.argv[3]).read_bytes())))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
