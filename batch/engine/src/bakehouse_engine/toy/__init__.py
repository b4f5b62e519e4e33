"""The toy instruct model: a few-MB chat model, trained here, whose system prompt visibly changes
its replies, so that a bake can be checked by behaviour and not only by loss (DESIGN.md §5).

`behaviours` maps each behaviour's name to (its canonical system prompt, a detector for replies).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bakehouse_engine.toy.cache import TOY_MODEL_NAME, ensure_toy_model, model_cache_dir
from bakehouse_engine.toy.corpus import BEHAVIOURS

behaviours: dict[str, tuple[str, Callable[[str], bool]]] = {b.name: (b.phrasings[0], b.detect) for b in BEHAVIOURS}


def build_toy_model(out_dir: Path, seed: int = 0) -> None:
    """Trains, verifies and saves the toy model into out_dir (needs the `ml` extra: torch, transformers)."""
    from bakehouse_engine.toy.train import build_toy_model as build

    build(out_dir, seed)


__all__ = ["TOY_MODEL_NAME", "behaviours", "build_toy_model", "ensure_toy_model", "model_cache_dir"]
