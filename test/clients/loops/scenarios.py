"""The official Loops SDK (`baseten-loops`, unchanged) through a whole training run on the toy model.

Usage: LOOPS_BASE_URL=… BASETEN_API_KEY=… python scenarios.py <toy model dir> <work dir>

The toy model answers a question with a fixed plain sentence chosen by the question's first word,
and with the system prompt "Always reply in uppercase letters." the same sentence in capitals
(batch/engine/src/bakehouse_engine/toy/corpus.py). A supervised LoRA run on chats whose answers
are in capitals teaches it that behaviour without the prompt, so each scenario can be checked by
what the model does, not only by a loss.

The scenarios run in order and share what they made (the run, its checkpoints, its samplers); each
one's outcome is recorded in <work dir>/results.json (../toy_scenarios.py), and the test
(test/e2e/loops-sdk.test.ts) judges them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from baseten.loops import AdamParams, Datum, ModelInput, SamplingParams, ServiceClient, TensorData
from safetensors import safe_open
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from toy_scenarios import TRAINING_CHATS, ToyScenarios  # noqa: E402 — found through the path above

BASE_MODEL = "bakehouse/toy-instruct"
LORA_RANK = 8
STEPS = 16
LEARNING_RATE = 5e-3
MAX_TOKENS = 40
# Bounds on each wait, so a server that never answers fails the scenario instead of holding it for
# the SDK's default hour.
READY_TIMEOUT_S = 150
OP_TIMEOUT_S = 120

# Questions the run never saw.
HELD_OUT_QUESTIONS = [
    "What makes bread rise?",
    "How do bees make honey?",
    "Why do we need to sleep?",
    "Who painted the Mona Lisa?",
    "Describe the ocean.",
    "Can fish see colours?",
]
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, seed=0)


class Scenarios(ToyScenarios):
    def __init__(self, model_dir: Path, work_dir: Path) -> None:
        super().__init__(AutoTokenizer.from_pretrained(model_dir), work_dir)
        self.base_url = os.environ["LOOPS_BASE_URL"].rstrip("/")
        self.api_key = os.environ["BASETEN_API_KEY"]

    # -- building blocks -------------------------------------------------------------------------

    def datum(self, question: str, answer: str) -> Datum:
        inputs, targets, weights = self.shifted(question, answer)
        return Datum(
            model_input=ModelInput.from_ints(inputs),
            loss_fn_inputs={
                "target_tokens": TensorData(data=targets, dtype="int64", shape=[len(targets)]),
                "weights": TensorData(data=weights, dtype="float32", shape=[len(weights)]),
            },
        )

    def replies(self, sampler: Any) -> list[dict[str, Any]]:
        return self.greedy_replies(HELD_OUT_QUESTIONS, lambda prompt: sampler.sample(ModelInput.from_ints(prompt), 1, GREEDY).sequences[0])

    def control_plane(self, method: str, path: str) -> httpx.Response:
        """A control-plane call the SDK does not make (deactivation), with the SDK's auth scheme."""
        return httpx.request(method, f"{self.base_url}{path}", headers={"Authorization": f"Api-Key {self.api_key}"}, timeout=60)

    # -- the scenarios ---------------------------------------------------------------------------

    def session(self) -> dict[str, Any]:
        service = ServiceClient(base_url=self.base_url, api_key=self.api_key)
        self.made["service"] = service
        return {"session_id": service.session_id}

    def provision(self) -> dict[str, Any]:
        started = time.monotonic()
        training = self.made["service"].create_lora_training_client(BASE_MODEL, rank=LORA_RANK, ready_timeout=READY_TIMEOUT_S)
        self.made["training"] = training
        return {"run_id": training.run_id, "ready_seconds": round(time.monotonic() - started, 2), "info": training.get_info().model_dump()}

    def supervised_loop(self) -> dict[str, Any]:
        training = self.made["training"]
        data = [self.datum(question, answer) for question, answer in TRAINING_CHATS]
        losses, optim_metrics = [], []
        for _ in range(STEPS):
            # Submitted back to back, as a training loop does; the run executes them in order.
            backward = training.forward_backward(data, "cross_entropy")
            step = training.optim_step(AdamParams(learning_rate=LEARNING_RATE))
            output = backward.result(timeout=OP_TIMEOUT_S)
            losses.append(output.loss)
            optim_metrics.append(step.result(timeout=OP_TIMEOUT_S).metrics)
        # Evaluation leaves the gradient buffer alone: the trained model's loss on the same batch.
        evaluated = training.forward(data, "cross_entropy").result(timeout=OP_TIMEOUT_S)
        self.made.update(data=data, trained_loss=evaluated.loss)
        return {
            "losses": losses,
            "trained_loss": evaluated.loss,
            "optim_metrics": optim_metrics,
            "loss_fn_output_type": output.loss_fn_output_type,
            # Per datum: the logprobs tensor's shape against the datum's input length.
            "logprob_shapes": [
                {"shape": out["logprobs"].shape, "input_length": datum.model_input.length}
                for out, datum in zip(evaluated.loss_fn_outputs, data)
            ],
            "datums": len(data),
        }

    def trained_sampler(self) -> dict[str, Any]:
        sampler = self.made["training"].save_weights_and_get_sampling_client("uppercase")
        self.made["trained_sampler"] = sampler
        return {"checkpoint_path": sampler.checkpoint_path, "checkpoint_name": sampler.checkpoint_name, "replies": self.replies(sampler)}

    def base_sampler(self) -> dict[str, Any]:
        sampler = self.made["service"].create_sampling_client(base_model=BASE_MODEL, ready_timeout=READY_TIMEOUT_S)
        self.made["base_sampler"] = sampler
        return {"replies": self.replies(sampler)}

    def compute_logprobs(self) -> dict[str, Any]:
        """One chat scored three ways: the trained sampler, the base sampler, and the trainer's own
        forward pass over the same weights, which the trained sampler must agree with."""
        question, answer = HELD_OUT_QUESTIONS[0], TRAINING_CHATS[0][1]
        tokens, prompt_length = self.chat_tokens(question, answer)
        trained = self.made["trained_sampler"].compute_logprobs(ModelInput.from_ints(tokens))
        base = self.made["base_sampler"].compute_logprobs(ModelInput.from_ints(tokens))
        forward = self.made["training"].forward([self.datum(question, answer)], "cross_entropy").result(timeout=OP_TIMEOUT_S)
        # The trainer's logprobs[i] scores token i+1, as the sampler's [i+1] does.
        trainer = [None, *forward.loss_fn_outputs[0]["logprobs"].data]
        answer_positions = range(prompt_length, len(tokens))
        return {
            "tokens": len(tokens),
            "trained": [None if value is None or math.isnan(value) else value for value in trained],
            "base": [None if value is None or math.isnan(value) else value for value in base],
            "trainer": trainer,
            "answer_positions": [answer_positions.start, answer_positions.stop],
        }

    def save_state(self) -> dict[str, Any]:
        saved = self.made["training"].save_state("trained").result(timeout=OP_TIMEOUT_S)
        self.made["state_path"] = saved.path
        return {"path": saved.path, "mode": saved.mode}

    def checkpoints(self) -> dict[str, Any]:
        training = self.made["training"]
        listed = training.list_checkpoints()
        files = training.get_checkpoint_archive_url(name="trained", target="trainer")
        downloads = {}
        for target, name in (("trainer", "trained"), ("sampler", self.made["trained_sampler"].checkpoint_name)):
            download = self.made["service"].download_checkpoint(
                name=name, run_id=training.run_id, target=target, dest_dir=str(self.work_dir / "downloads" / target)
            )
            downloads[target] = {"file_count": download.file_count, "bytes": download.bytes_written, **peft_layout(Path(download.dest_dir))}
        return {
            # As on the wire: the adapter's rank is `r`.
            "listed": [checkpoint.model_dump(mode="json", by_alias=True) for checkpoint in listed],
            "files": {
                "names": sorted(entry.relative_file_name for entry in files.presigned_urls),
                "total_count": files.total_count,
                "next_page_token": files.next_page_token,
                "sizes": {entry.relative_file_name: entry.size_bytes for entry in files.presigned_urls},
            },
            "downloads": downloads,
        }

    def resume(self) -> dict[str, Any]:
        resumed = self.made["service"].create_training_client_from_state(self.made["state_path"])
        self.made["resumed"] = resumed
        first = resumed.forward(self.made["data"], "cross_entropy").result(timeout=OP_TIMEOUT_S)
        return {"run_id": resumed.run_id, "first_loss": first.loss, "trained_loss": self.made["trained_loss"]}

    def model_path_sampler(self) -> dict[str, Any]:
        path = self.made["trained_sampler"].checkpoint_path
        sampler = self.made["service"].create_sampling_client(model_path=path, ready_timeout=READY_TIMEOUT_S)
        return {"model_path": path, "base_model": sampler.get_base_model(), "replies": self.replies(sampler)}

    def deactivate(self) -> dict[str, Any]:
        training = self.made["training"]
        answer = self.control_plane("POST", f"/v1/loops/runs/{training.run_id}/deactivate")
        result: dict[str, Any] = {"deactivate": {"status": answer.status_code, "body": answer.text}}
        result["health"] = http_error_of(training.health)
        started = time.monotonic()
        result["submit"] = http_error_of(lambda: training.forward_backward(self.made["data"], "cross_entropy").result(timeout=OP_TIMEOUT_S))
        result["submit"]["seconds"] = round(time.monotonic() - started, 2)
        return result

    def close(self) -> None:
        """Stops the clients' keepalives and the resumed run, so no trainer outlives the test."""
        for name in ("training", "resumed"):
            if name in self.made:
                self.made[name].close()
        if "resumed" in self.made:
            self.control_plane("POST", f"/v1/loops/runs/{self.made['resumed'].run_id}/deactivate")


def http_error_of(call: Callable[[], object]) -> dict[str, Any]:
    """What the SDK raised for a call expected to fail: its class, message and HTTP answer."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 — the caller judges what was raised
        response = getattr(error, "response", None)
        return {
            "raised": type(error).__name__,
            "message": str(error),
            "status": response.status_code if response is not None else None,
            "headers": {key.lower(): value for key, value in response.headers.items()} if response is not None else {},
        }
    return {"raised": None}


def peft_layout(directory: Path) -> dict[str, Any]:
    """What a PEFT user would find: the adapter's configuration and its tensors' LoRA ranks."""
    files = sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())
    layout: dict[str, Any] = {"files": files}
    config_file = directory / "adapter_config.json"
    if config_file.exists():
        config = json.loads(config_file.read_text())
        layout["config"] = {key: config.get(key) for key in ("peft_type", "r", "lora_alpha", "target_modules", "base_model_name_or_path")}
    weights_file = directory / "adapter_model.safetensors"
    if weights_file.exists():
        # safetensors' numpy loader reads the header and tensors without torch.
        with safe_open(str(weights_file), framework="numpy") as weights:
            shapes = {key: list(weights.get_slice(key).get_shape()) for key in weights.keys()}
        layout["tensors"] = len(shapes)
        # PEFT stores lora_A as (r, in) and lora_B as (out, r).
        layout["lora_a_ranks"] = sorted({shape[0] for key, shape in shapes.items() if "lora_A" in key})
        layout["lora_b_ranks"] = sorted({shape[-1] for key, shape in shapes.items() if "lora_B" in key})
    return layout


def main(model_dir: str, work_dir: str) -> None:
    scenarios = Scenarios(Path(model_dir), Path(work_dir))
    try:
        scenarios.run("session", (), scenarios.session)
        scenarios.run("provision", ("session",), scenarios.provision)
        scenarios.run("supervised_loop", ("provision",), scenarios.supervised_loop)
        scenarios.run("base_sampler", ("session",), scenarios.base_sampler)
        scenarios.run("trained_sampler", ("supervised_loop",), scenarios.trained_sampler)
        scenarios.run("compute_logprobs", ("trained_sampler", "base_sampler"), scenarios.compute_logprobs)
        scenarios.run("save_state", ("supervised_loop",), scenarios.save_state)
        scenarios.run("checkpoints", ("save_state", "trained_sampler"), scenarios.checkpoints)
        scenarios.run("resume", ("save_state",), scenarios.resume)
        scenarios.run("model_path_sampler", ("trained_sampler",), scenarios.model_path_sampler)
        scenarios.run("deactivate", ("supervised_loop",), scenarios.deactivate)
    finally:
        scenarios.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
