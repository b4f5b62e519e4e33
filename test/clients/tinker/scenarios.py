"""The stock tinker SDK (any of the targeted versions, unchanged) through a training run on the toy model.

Usage: TINKER_BASE_URL={origin}/tinker TINKER_API_KEY=tml-… python scenarios.py <toy model dir> <work dir>

The toy model answers a question with a fixed plain sentence chosen by the question's first word,
and with the system prompt "Always reply in uppercase letters." the same sentence in capitals
(batch/engine/src/bakehouse_engine/toy/corpus.py). A supervised LoRA run on chats whose answers
are in capitals teaches it that behaviour without the prompt, so each scenario can be checked by
what the model does, not only by a loss. The exchange is loops-api.md §2.14's minimal one, for
every version: train with forward_backward and optim_step submitted before either is awaited,
save_weights_and_get_sampling_client and sample, compute_logprobs with top-k, save_state and
create_training_client_from_state, the REST client's listings (plus the archive download that
clients up to 0.37 use), and its checkpoint settings: publish, unpublish and a time to live. With
0.38 also external weights: save_weights_external and the signed URL per file the RestClient gets
for them, and the CLI's `tinker checkpoint download` of the saved state, which goes through both.

The scenarios run in order and share what they made; each one's outcome is recorded in
<work dir>/results.json (../toy_scenarios.py), and the test (test/e2e/tinker-sdk.test.ts) judges
them.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import tinker
from tinker import types
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from toy_scenarios import TRAINING_CHATS, ToyScenarios  # noqa: E402 — found through the path above

SDK_VERSION = importlib.metadata.version("tinker")
# 0.38 makes a RestClient on its own, and brings external weights and the CLI's checkpoint download.
SINCE_0_38 = tuple(int(part) for part in SDK_VERSION.split(".")[:2]) >= (0, 38)
BASE_MODEL = "bakehouse/toy-instruct"
LORA_RANK = 8
STEPS = 8
LEARNING_RATE = 5e-3
MAX_TOKENS = 40
# A bound on each wait, so a server that never answers fails the scenario instead of holding it.
OP_TIMEOUT_S = 150

# Questions the run never saw.
HELD_OUT_QUESTIONS = [
    "What makes bread rise?",
    "How do bees make honey?",
    "Why do we need to sleep?",
    "Who painted the Mona Lisa?",
]
GREEDY = types.SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, seed=0)
TOP_K = 3


def ready(made: Any) -> Any:
    """A client as the version hands it out: 0.38 returns futures of clients (with a deprecated
    direct use that warns), older versions the clients themselves."""
    result = getattr(made, "result", None)
    return result(timeout=OP_TIMEOUT_S) if callable(result) else made


def finite(values: list[float | None] | None) -> list[float | None] | None:
    return None if values is None else [None if value is None or math.isnan(value) else float(value) for value in values]


class Scenarios(ToyScenarios):
    def __init__(self, model_dir: Path, work_dir: Path) -> None:
        super().__init__(AutoTokenizer.from_pretrained(model_dir), work_dir)

    # -- building blocks -------------------------------------------------------------------------

    def datum(self, question: str, answer: str) -> types.Datum:
        inputs, targets, weights = self.shifted(question, answer)
        return types.Datum(
            model_input=types.ModelInput.from_ints(inputs),
            loss_fn_inputs={
                "target_tokens": types.TensorData(data=targets, dtype="int64", shape=[len(targets)]),
                "weights": types.TensorData(data=weights, dtype="float32", shape=[len(weights)]),
            },
        )

    def replies(self, sampler: Any) -> list[dict[str, Any]]:
        def sample(prompt: list[int]) -> Any:
            return sampler.sample(prompt=types.ModelInput.from_ints(prompt), num_samples=1, sampling_params=GREEDY).result(timeout=OP_TIMEOUT_S).sequences[0]

        return self.greedy_replies(HELD_OUT_QUESTIONS, sample)

    # -- the scenarios ---------------------------------------------------------------------------

    def provision(self) -> dict[str, Any]:
        # TINKER_BASE_URL and TINKER_API_KEY come from the environment, as a user sets them.
        service = tinker.ServiceClient()
        self.made["service"] = service
        training = ready(service.create_lora_training_client(base_model=BASE_MODEL, rank=LORA_RANK))
        self.made["training"] = training
        info = training.get_info()
        self.made["model_id"] = training.model_id if hasattr(training, "model_id") else info.model_id
        return {
            "sdk_version": SDK_VERSION,
            "model_id": self.made["model_id"],
            "model_name": info.model_data.model_name,
            "lora_rank": info.lora_rank,
            "is_lora": info.is_lora,
        }

    def supervised_loop(self) -> dict[str, Any]:
        training = self.made["training"]
        data = [self.datum(question, answer) for question, answer in TRAINING_CHATS]
        losses, optim_metrics = [], []
        started = time.monotonic()
        for _ in range(STEPS):
            # Both submitted before either is awaited (loops-api.md §2.13); the run keeps their order.
            backward = training.forward_backward(data, "cross_entropy")
            step = training.optim_step(types.AdamParams(learning_rate=LEARNING_RATE))
            output = backward.result(timeout=OP_TIMEOUT_S)
            losses.append(output.metrics["loss:sum"])
            optim_metrics.append(step.result(timeout=OP_TIMEOUT_S).metrics)
        loop_seconds = time.monotonic() - started
        # A forward leaves the gradient alone: the trained model's loss on the same batch.
        evaluated = training.forward(data, "cross_entropy").result(timeout=OP_TIMEOUT_S)
        self.made.update(data=data, trained_loss=evaluated.metrics["loss:sum"])
        return {
            "losses": losses,
            "step_seconds": round(loop_seconds / STEPS, 3),
            "trained_loss": evaluated.metrics["loss:sum"],
            "metric_keys": sorted(output.metrics),
            "optim_metrics": optim_metrics,
            "loss_fn_output_type": output.loss_fn_output_type,
            # Per datum: the logprobs tensor's shape and dtype against the datum's target count.
            "logprobs": [
                {"shape": list(out["logprobs"].shape or []), "dtype": out["logprobs"].dtype, "targets": len(datum.loss_fn_inputs["target_tokens"].data)}
                for out, datum in zip(evaluated.loss_fn_outputs, data)
            ],
            "datums": len(data),
        }

    def trained_sampler(self) -> dict[str, Any]:
        sampler = ready(self.made["training"].save_weights_and_get_sampling_client())
        self.made["trained_sampler"] = sampler
        return {"replies": self.replies(sampler)}

    def base_sampler(self) -> dict[str, Any]:
        sampler = ready(self.made["service"].create_sampling_client(base_model=BASE_MODEL))
        self.made["base_sampler"] = sampler
        return {"replies": self.replies(sampler)}

    def compute_logprobs(self) -> dict[str, Any]:
        """One chat scored by the trained sampler, the base sampler and the trainer's own forward
        over the same weights, which the trained sampler must agree with; and its top-k."""
        question, answer = HELD_OUT_QUESTIONS[0], TRAINING_CHATS[0][1]
        tokens, prompt_length = self.chat_tokens(question, answer)
        prompt = types.ModelInput.from_ints(tokens)
        trained = self.made["trained_sampler"].compute_logprobs(prompt).result(timeout=OP_TIMEOUT_S)
        base = self.made["base_sampler"].compute_logprobs(prompt).result(timeout=OP_TIMEOUT_S)
        forward = self.made["training"].forward([self.datum(question, answer)], "cross_entropy").result(timeout=OP_TIMEOUT_S)
        top = self.made["trained_sampler"].sample(
            prompt=prompt,
            num_samples=1,
            sampling_params=types.SamplingParams(max_tokens=1, temperature=0.0),
            include_prompt_logprobs=True,
            topk_prompt_logprobs=TOP_K,
        ).result(timeout=OP_TIMEOUT_S)
        return {
            "tokens": tokens,
            "trained": finite(trained),
            "base": finite(base),
            # The trainer's logprobs[i] scores token i+1, as the sampler's [i+1] does.
            "trainer": [None, *[float(value) for value in forward.loss_fn_outputs[0]["logprobs"].data]],
            "answer_positions": [prompt_length, len(tokens)],
            "sampled_prompt_logprobs": finite(top.prompt_logprobs),
            "topk_prompt_logprobs": None
            if top.topk_prompt_logprobs is None
            else [None if row is None else [[int(token), float(logprob)] for token, logprob in row] for row in top.topk_prompt_logprobs],
        }

    def save_state(self) -> dict[str, Any]:
        saved = self.made["training"].save_state("trained").result(timeout=OP_TIMEOUT_S)
        self.made["state_path"] = saved.path
        return {"path": saved.path}

    def resume(self) -> dict[str, Any]:
        resumed = ready(self.made["service"].create_training_client_from_state(self.made["state_path"]))
        self.made["resumed"] = resumed
        first = resumed.forward(self.made["data"], "cross_entropy").result(timeout=OP_TIMEOUT_S)
        return {"first_loss": first.metrics["loss:sum"], "trained_loss": self.made["trained_loss"]}

    def rest_client(self) -> Any:
        # 0.38 makes a RestClient on its own, with no session (loops-api.md §2.14); older
        # versions through their service client.
        return tinker.RestClient() if SINCE_0_38 else self.made["service"].create_rest_client()

    def rest(self) -> dict[str, Any]:
        rest = self.rest_client()
        model_id = self.made["model_id"]
        runs = rest.list_training_runs(limit=100).result(timeout=OP_TIMEOUT_S)
        run = rest.get_training_run(model_id).result(timeout=OP_TIMEOUT_S)
        checkpoints = rest.list_checkpoints(model_id).result(timeout=OP_TIMEOUT_S).checkpoints
        result: dict[str, Any] = {
            "run_ids": [listed.training_run_id for listed in runs.training_runs],
            "run": {"training_run_id": run.training_run_id, "base_model": run.base_model, "is_lora": run.is_lora, "lora_rank": run.lora_rank},
            "checkpoints": [
                {"checkpoint_id": c.checkpoint_id, "checkpoint_type": c.checkpoint_type, "tinker_path": c.tinker_path} for c in checkpoints
            ],
        }
        # The archive download of clients up to 0.37 (0.38 no longer calls it): the sampler weights
        # as a tarball behind a signed URL.
        archive_url = getattr(rest, "get_checkpoint_archive_url", None)
        sampler_checkpoint = next((c for c in checkpoints if c.checkpoint_type == "sampler"), None)
        if archive_url is not None and sampler_checkpoint is not None:
            url = archive_url(model_id, sampler_checkpoint.checkpoint_id).result(timeout=OP_TIMEOUT_S).url
            download = httpx.get(url, timeout=OP_TIMEOUT_S, follow_redirects=True)
            download.raise_for_status()
            with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:*") as archive:
                result["archive"] = {"checkpoint_id": sampler_checkpoint.checkpoint_id, "files": sorted(Path(name).name for name in archive.getnames())}
        return result

    def checkpoint_settings(self) -> dict[str, Any]:
        """The saved state published (twice: a repeat changes nothing) and unpublished, given a
        time to live and then none, through the RestClient's own methods, each step seen in the
        run's checkpoint listing; and the server's refusal of a time to live under an hour."""
        rest = self.rest_client()
        path = self.made["state_path"]

        def listed() -> dict[str, Any]:
            checkpoints = rest.list_checkpoints(self.made["model_id"]).result(timeout=OP_TIMEOUT_S).checkpoints
            checkpoint = next(c for c in checkpoints if c.tinker_path == path)
            return {"public": checkpoint.public, "expires_at": None if checkpoint.expires_at is None else checkpoint.expires_at.isoformat()}

        def refused(call: Any) -> dict[str, Any]:
            try:
                call().result(timeout=OP_TIMEOUT_S)
            except tinker.APIStatusError as error:
                return {"status": error.status_code, "message": (error.body or {}).get("message") if isinstance(error.body, dict) else str(error)}
            return {"status": None}

        steps: dict[str, Any] = {}
        rest.publish_checkpoint_from_tinker_path(path).result(timeout=OP_TIMEOUT_S)
        steps["published"] = listed()
        rest.publish_checkpoint_from_tinker_path(path).result(timeout=OP_TIMEOUT_S)
        steps["published_again"] = listed()
        rest.unpublish_checkpoint_from_tinker_path(path).result(timeout=OP_TIMEOUT_S)
        steps["unpublished"] = listed()
        steps["ttl_set_at"] = time.time()
        rest.set_checkpoint_ttl_from_tinker_path(path, 7200).result(timeout=OP_TIMEOUT_S)
        steps["expiring"] = listed()
        steps["ttl_too_short"] = refused(lambda: rest.set_checkpoint_ttl_from_tinker_path(path, 60))
        rest.set_checkpoint_ttl_from_tinker_path(path, None).result(timeout=OP_TIMEOUT_S)
        steps["kept"] = listed()
        return steps

    def external_weights(self) -> dict[str, Any]:
        """0.38: the trained adapter saved as external weights, listed as such, and each of its
        files fetched through the signed URL the RestClient gets; the files are read as a PEFT
        adapter's (the test loads them with PEFT)."""
        if not SINCE_0_38:
            return {"supported": False}
        rest = self.rest_client()
        saved = self.made["training"].save_weights_external("exported").result(timeout=OP_TIMEOUT_S)
        signed = rest.get_external_weights_urls(saved.path).result(timeout=OP_TIMEOUT_S)
        folder = self.work_dir / "external_weights"
        folder.mkdir(parents=True, exist_ok=True)
        for name, url in signed.urls.items():
            download = httpx.get(url, timeout=OP_TIMEOUT_S)
            download.raise_for_status()
            (folder / name).write_bytes(download.content)
        checkpoints = rest.list_checkpoints(self.made["model_id"]).result(timeout=OP_TIMEOUT_S).checkpoints
        listed = next(c for c in checkpoints if c.tinker_path == saved.path)
        return {
            "supported": True,
            "path": saved.path,
            "listed": {"checkpoint_id": listed.checkpoint_id, "checkpoint_type": listed.checkpoint_type, "size_bytes": listed.size_bytes},
            "urls_valid_s": (signed.expires - datetime.now(timezone.utc)).total_seconds(),
            "dir": str(folder),
            **self.adapter_files(folder),
        }

    def cli_download(self) -> dict[str, Any]:
        """0.38's `tinker checkpoint download` of the saved state, as a user runs it: it loads the
        state into a new run, saves it as temporary external weights, downloads their files and
        deletes them."""
        if not SINCE_0_38:
            return {"supported": False}
        output = self.work_dir / "cli_download"
        command = [sys.executable, "-m", "tinker.cli", "--format", "json", "checkpoint", "download", self.made["state_path"], "--output", str(output)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=4 * OP_TIMEOUT_S, env=os.environ, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tinker checkpoint download exited with {done.returncode}: {done.stderr[-3000:]}{done.stdout[-1000:]}")
        printed = json.loads(done.stdout)
        listed = self.rest_client().list_user_checkpoints(limit=1000).result(timeout=OP_TIMEOUT_S).checkpoints
        return {
            "supported": True,
            "printed": printed,
            "dir": printed["destination"],
            # The temporary export is deleted after the download.
            "external_checkpoints": sorted(c.tinker_path for c in listed if c.checkpoint_type == "external"),
            **self.adapter_files(Path(printed["destination"])),
        }

    @staticmethod
    def adapter_files(folder: Path) -> dict[str, Any]:
        """The files in `folder`, its adapter_config.json, and the tensors of its safetensors file."""
        from safetensors import safe_open

        with safe_open(str(folder / "adapter_model.safetensors"), framework="numpy") as weights:
            tensors = list(weights.keys())
        config = json.loads((folder / "adapter_config.json").read_text())
        return {
            "files": sorted(path.name for path in folder.iterdir()),
            "adapter_config": {"peft_type": config.get("peft_type"), "r": config.get("r")},
            "tensors": len(tensors),
            "lora_tensors": sum("lora_A" in name or "lora_B" in name for name in tensors),
        }

    def close(self) -> dict[str, Any]:
        """0.38 ends its session (`sessions/{id}/finish`) when the service client closes."""
        service = self.made["service"]
        close = getattr(service, "close", None)
        if close is None:
            return {"closed": False}
        close("success", detail="the scenarios are done").result(timeout=OP_TIMEOUT_S)
        return {"closed": True}


def main(model_dir: str, work_dir: str) -> None:
    scenarios = Scenarios(Path(model_dir), Path(work_dir))
    scenarios.run("provision", (), scenarios.provision)
    scenarios.run("supervised_loop", ("provision",), scenarios.supervised_loop)
    scenarios.run("base_sampler", ("provision",), scenarios.base_sampler)
    scenarios.run("trained_sampler", ("supervised_loop",), scenarios.trained_sampler)
    scenarios.run("compute_logprobs", ("trained_sampler", "base_sampler"), scenarios.compute_logprobs)
    scenarios.run("save_state", ("supervised_loop",), scenarios.save_state)
    scenarios.run("resume", ("save_state",), scenarios.resume)
    scenarios.run("rest", ("save_state", "trained_sampler"), scenarios.rest)
    scenarios.run("checkpoint_settings", ("save_state",), scenarios.checkpoint_settings)
    scenarios.run("external_weights", ("save_state",), scenarios.external_weights)
    scenarios.run("cli_download", ("save_state",), scenarios.cli_download)
    scenarios.run("close", ("provision",), scenarios.close)
    # The SDK's background threads (heartbeat, telemetry) must not hold the process open.
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
