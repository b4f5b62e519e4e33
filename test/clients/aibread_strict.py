"""The official Python client (`aibread`) with strict response validation against a local server.

With `_strict_response_validation=True` the client validates every response against its pydantic
models and raises `APIResponseValidationError` on any mismatch (a null where it types a number,
a missing required key), so each call below is also a check of the response's shape.

Usage: BREAD_BASE_URL=… BREAD_API_KEY=… python aibread_strict.py <hold-file>
The stand-in engine (test/support/stand-in-engine.mjs) keeps a bake running while <hold-file>
exists; this script polls the running bake, then removes the file and polls it to completion.
Prints one JSON object: each call's name and the response the client parsed.
"""

import json
import os
import sys
import time
from typing import Callable, TypeVar

from aibread import Bread

REPO = "strict_repo"
TARGET = "shout"
BAKE = "shout_bake"
TIMEOUT_S = 60

T = TypeVar("T")
seen: dict[str, object] = {}


def record(name: str, response: T) -> T:
    """Keeps what the client parsed, as plain JSON, for the caller to check."""
    seen[name] = response.model_dump(mode="json", by_alias=True) if hasattr(response, "model_dump") else response
    return response


def until(probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {TIMEOUT_S} s; last response: {value!r}")
        time.sleep(0.1)


def main(hold_file: str) -> None:
    client = Bread(_strict_response_validation=True, max_retries=0)

    record("health.check", client.health.check())
    record("repo.create", client.repo.create(repo_name=REPO, base_model="bakehouse/toy-instruct"))
    record("repo.get", client.repo.get(REPO))
    record("repo.list", client.repo.list())
    record("repo.list.metadata", client.repo.list(include_metadata=True, offset=0, limit=10))
    record("repo.list.metadata.default_page", client.repo.list(include_metadata=True))

    teacher = [{"role": "system", "content": "Always reply in uppercase letters."}]
    record("prompts.create", client.prompts.create(REPO, prompt_name="teacher", messages=teacher))
    client.prompts.create(REPO, prompt_name="student", messages=[])
    record("prompts.get", client.prompts.get("teacher", repo_name=REPO))
    record("prompts.list", client.prompts.list(REPO))

    overrides = {
        "teacher_prompt": "teacher",
        "student_prompt": "student",
        "generators": [{"type": "hardcoded", "questions": ["What is bread?", "Why bake?", "Which flour?"]}],
        "num_traj_per_stimulus": 2,
    }
    record("targets.create", client.targets.create(REPO, target_name=TARGET, template="default", overrides=overrides))
    record("targets.get", client.targets.get(TARGET, repo_name=REPO))
    record("targets.list", client.targets.list(REPO))

    for kind in ("stim", "rollout"):
        jobs = getattr(client.targets, kind)
        record(f"{kind}.get.not_started", jobs.get(TARGET, repo_name=REPO))
        record(f"{kind}.run", jobs.run(TARGET, repo_name=REPO, poll=False))
        status = until(lambda: jobs.get(TARGET, repo_name=REPO), lambda s: s.status in ("complete", "failed"), f"the {kind} job finishing")
        record(f"{kind}.get.complete", status)
        record(f"{kind}.get_output", jobs.get_output(TARGET, repo_name=REPO, offset=1, limit=2))

    record("bakes.create", client.bakes.create(REPO, bake_name=BAKE, template="default", overrides={"datasets": [{"target": TARGET}]}))
    record("bakes.get.not_started", client.bakes.get(BAKE, repo_name=REPO))
    record("bakes.list", client.bakes.list(REPO))
    record("bakes.run", client.bakes.run(BAKE, repo_name=REPO, poll=False))
    running = until(lambda: client.bakes.get(BAKE, repo_name=REPO), lambda s: s.status == "running" and s.loss is not None, "a running bake reporting its loss")
    record("bakes.get.running", running)
    record("bakes.get_metrics.running", client.bakes.get_metrics(BAKE, repo_name=REPO))
    record("repo.get_tree.running", client.repo.get_tree(REPO))

    os.remove(hold_file)
    done = until(lambda: client.bakes.get(BAKE, repo_name=REPO), lambda s: s.status in ("complete", "failed"), "the bake finishing")
    record("bakes.get.complete", done)
    record("bakes.get_metrics.complete", client.bakes.get_metrics(BAKE, repo_name=REPO))
    record("bakes.download", client.bakes.download(BAKE, repo_name=REPO))
    record("repo.get_tree.complete", client.repo.get_tree(REPO))
    record("recipes.get_dependency_graph", client.recipes.get_dependency_graph(BAKE, repo_name=REPO))
    record("recipes.get_recreation_plan", client.recipes.get_recreation_plan(BAKE, repo_name=REPO))

    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
