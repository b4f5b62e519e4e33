"""Seeded sampling shared by the generators that draw from a fixed pool."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def sample(pool: Sequence[T], count: int, seed: int) -> list[T]:
    """`count` items: without replacement while the pool lasts, then reshuffled passes over it
    (the same rule as bake collation, bread-api.md §6.5). The same seed gives the same list."""
    rng = random.Random(seed)
    chosen: list[T] = []
    while len(chosen) < count:
        order = list(pool)
        rng.shuffle(order)
        chosen.extend(order[: count - len(chosen)])
    return chosen
