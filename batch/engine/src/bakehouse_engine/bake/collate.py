"""Which rollout trajectories a bake trains on (bread-api §6.5, "collation").

The weights are normalised; target i contributes round(total × wᵢ / Σw) trajectories, drawn without
replacement while enough remain and then with replacement, and the union is shuffled with the seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bakehouse_engine.errors import JobFailure


@dataclass
class TargetData:
    target: str
    weight: float
    lines: list[dict]


def target_counts(datasets: list[TargetData], total: int) -> list[int]:
    weight_sum = sum(dataset.weight for dataset in datasets)
    if weight_sum <= 0:
        raise JobFailure("Every dataset weight is 0; give at least one target a positive weight.")
    # Half-up rounding: Python's round() would send 2.5 to 2 and 3.5 to 4.
    return [math.floor(total * dataset.weight / weight_sum + 0.5) for dataset in datasets]


def collate(datasets: list[TargetData], total: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    chosen: list[dict] = []
    for dataset, count in zip(datasets, target_counts(datasets, total)):
        if count == 0:
            continue
        if not dataset.lines:
            raise JobFailure(f"Target {dataset.target} has no rollout trajectories; run its rollout first.")
        distinct = min(count, len(dataset.lines))
        chosen.extend(rng.sample(dataset.lines, distinct))
        chosen.extend(rng.choices(dataset.lines, k=count - distinct))
    rng.shuffle(chosen)
    return chosen
