"""`hardcoded`: the generator's own questions, the first `numq` of them."""

from __future__ import annotations

from collections.abc import Iterator

from bakehouse_engine.stim.request import GeneratorRequest


def generate(request: GeneratorRequest) -> Iterator[str]:
    yield from request.config["questions"][: request.numq]
