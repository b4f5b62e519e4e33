"""The toy model in the model cache: built once under a lock, and behaving as its prompts say."""

import json
import threading
import time
from pathlib import Path

import pytest

from bakehouse_engine.toy import TOY_MODEL_NAME, behaviours, ensure_toy_model, train
from bakehouse_engine.toy.cache import MANIFEST, TOY_MODEL_VERSION


@pytest.fixture
def fake_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Swaps training for writing a manifest, and points the model cache at tmp_path."""
    monkeypatch.setenv("BAKEHOUSE_MODEL_CACHE", str(tmp_path))
    builds: list[Path] = []

    def build(out_dir: Path, seed: int = 0) -> None:
        time.sleep(0.1)
        builds.append(out_dir)
        (out_dir / MANIFEST).write_text(json.dumps({"version": TOY_MODEL_VERSION}))

    monkeypatch.setattr(train, "build_toy_model", build)
    return builds


def test_the_toy_model_is_built_into_the_cache_once(tmp_path: Path, fake_builds: list[Path]) -> None:
    path = ensure_toy_model()
    assert path == tmp_path / TOY_MODEL_NAME and (path / MANIFEST).exists()
    assert ensure_toy_model() == path
    assert len(fake_builds) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [".toy-instruct.lock", "toy-instruct"]


def test_concurrent_jobs_share_one_build(fake_builds: list[Path]) -> None:
    threads = [threading.Thread(target=ensure_toy_model) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_builds) == 1


def test_a_model_from_an_older_recipe_is_rebuilt(tmp_path: Path, fake_builds: list[Path]) -> None:
    stale = tmp_path / TOY_MODEL_NAME
    stale.mkdir(parents=True)
    (stale / MANIFEST).write_text(json.dumps({"version": TOY_MODEL_VERSION - 1}))
    (stale / "leftover.bin").write_text("old")
    assert ensure_toy_model() == stale
    assert len(fake_builds) == 1 and not (stale / "leftover.bin").exists()


def test_a_killed_builds_leftovers_are_cleared(tmp_path: Path, fake_builds: list[Path]) -> None:
    leftover = tmp_path / "bakehouse" / ".toy-instruct-build-killed"
    leftover.mkdir(parents=True)
    ensure_toy_model()
    assert not leftover.exists()


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAKEHOUSE_MODEL_CACHE", str(tmp_path))

    def fail(out_dir: Path, seed: int = 0) -> None:
        (out_dir / "partial.bin").write_text("half")
        raise RuntimeError("The toy model failed its behaviour check")

    monkeypatch.setattr(train, "build_toy_model", fail)
    with pytest.raises(RuntimeError):
        ensure_toy_model()
    assert [p.name for p in (tmp_path / "bakehouse").iterdir()] == [".toy-instruct.lock"]


@pytest.mark.toy_model
def test_the_cached_toy_model_answers_as_its_prompts_say() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bakehouse_engine.toy.evaluate import MAX_WITHOUT_PROMPT, MIN_WITH_PROMPT, behaviour_rates, held_out_questions

    path = ensure_toy_model()
    assert (path / "model.safetensors").stat().st_size < 10 * 2**20
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    questions = held_out_questions()[::4]
    for sample in (False, True):
        plain = behaviour_rates(model, tokenizer, questions, None, sample)
        assert all(rate <= MAX_WITHOUT_PROMPT for rate in plain.values()), plain
        for name, (prompt, _) in behaviours.items():
            assert behaviour_rates(model, tokenizer, questions, prompt, sample)[name] >= MIN_WITH_PROMPT, name
        everything = " ".join(prompt for prompt, _ in behaviours.values())
        combined = behaviour_rates(model, tokenizer, questions, everything, sample)
        assert all(rate >= MIN_WITH_PROMPT for rate in combined.values()), combined
