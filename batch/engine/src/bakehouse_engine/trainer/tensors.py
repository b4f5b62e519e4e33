"""TrainerTensor (functions/schemas/trainer.ts) to and from torch: flat row-major data with a shape.

JSON has no NaN, so float outputs carry `null` where a value is not finite, and a `null` in a float
input reads as NaN.
"""

from __future__ import annotations

import math

import torch

from bakehouse_engine.trainer.errors import InvalidInput

_INTEGER_DTYPES = ("int32", "int64", "int8")


def decode(tensor: dict, name: str) -> torch.Tensor:
    """The tensor as float32, or int64 for integer dtypes; InvalidInput when data does not fill the shape."""
    shape, data = tensor["shape"], tensor["data"]
    if math.prod(shape) != len(data):
        raise InvalidInput(f"{name} has shape {shape}, which holds {math.prod(shape)} values, but {len(data)} were sent.")
    if tensor["dtype"] in _INTEGER_DTYPES:
        if not all(isinstance(value, (int, float)) and math.isfinite(value) and value == int(value) for value in data):
            raise InvalidInput(f"{name} is declared {tensor['dtype']} but holds values that are not integers.")
        return torch.tensor([int(value) for value in data], dtype=torch.int64).reshape(shape)
    if not all(value is None or isinstance(value, (int, float)) for value in data):
        raise InvalidInput(f"{name} holds values that are not numbers.")
    return torch.tensor([math.nan if value is None else float(value) for value in data], dtype=torch.float32).reshape(shape)


def encode_floats(values: torch.Tensor) -> dict:
    """A float32 TrainerTensor; non-finite values become null."""
    flat = values.detach().to(torch.float32).flatten().tolist()
    return {"data": [value if math.isfinite(value) else None for value in flat], "dtype": "float32", "shape": list(values.shape)}


def encode_ints(values: torch.Tensor) -> dict:
    return {"data": values.detach().flatten().tolist(), "dtype": "int64", "shape": list(values.shape)}
