"""`persona`: questions asked by people from a shipped persona set, through question templates.

Deterministic and offline: the persona × topic × template pool is sampled with the generator's
seed, so the same target always gets the same stimuli.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources

from bakehouse_engine.stim.request import GeneratorRequest
from bakehouse_engine.stim.sampling import sample


@cache
def persona_questions() -> tuple[str, ...]:
    """Every question the persona set can produce, in a fixed order."""
    data = json.loads((resources.files(__package__) / "personas.json").read_text(encoding="utf-8"))
    return tuple(
        template.format(persona=entry["persona"], topic=topic)
        for entry in data["personas"]
        for topic in entry["topics"]
        for template in data["templates"]
    )


def generate(request: GeneratorRequest) -> Iterator[str]:
    yield from sample(persona_questions(), request.numq, request.seed)
