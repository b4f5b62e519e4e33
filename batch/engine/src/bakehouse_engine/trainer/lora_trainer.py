"""The run's training state on one PEFT model, and the operations on it (functions/schemas/trainer.ts).

The base model is loaded once; the run's LoRA adapter (rank from the job, every linear layer,
lora_alpha = rank so the adapter's scale is 1 whatever the rank) is trained with torch's AdamW
(decoupled weight decay) over the adapter's parameters. Between operations the trainer holds the
adapter, the optimizer, the gradient accumulated since the last optim_step with its normalisation
mode and active-token count, the step and the policy version.

Normalisation (loops-data-plane.md §8.4): every forward accumulates the gradient of its loss *sum*;
in `token_mean_deferred` mode optim_step divides it by the active tokens of every call since the
last step, so calls split any way give the step one call would. `sum` mode steps on the plain sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bakehouse_engine.trainer.errors import InvalidInput
from bakehouse_engine.trainer.forward import ForwardOutcome, run_forward
from bakehouse_engine.trainer.losses import LOSSES
from bakehouse_engine.trainer.rows import decode_rows


@dataclass
class Gradient:
    """What has accumulated in the parameters' `.grad` since the last optim_step."""

    normalization: str
    active_tokens: int


class LoraTrainer:
    def __init__(self, model: Any, base_model: str, rank: int, seed: int | None, max_seq_len: int, pad_id: int) -> None:
        from peft import LoraConfig, get_peft_model

        self.rank, self.seed, self.max_seq_len, self.pad_id = rank, seed, max_seq_len, pad_id
        model.config.use_cache = False
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules="all-linear", lora_dropout=0.0, bias="none")
        # PEFT keeps the adapter in float32 over a bf16 base, so small updates are not rounded away.
        self.model = get_peft_model(model, config)
        # The name a PEFT user loads the base by, rather than this machine's cache directory.
        self.model.peft_config["default"].base_model_name_or_path = base_model
        self.model.eval()  # no dropout anywhere: a forward's log-probs are exact and repeatable
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.vocab_size = self.model.get_output_embeddings().weight.shape[0]
        self.reset()

    @property
    def lora_config(self) -> dict:
        config = self.model.peft_config["default"]
        return {"r": config.r, "lora_alpha": config.lora_alpha, "target_modules": sorted(config.target_modules)}

    def reset(self) -> None:
        """A fresh adapter (seeded by the job's seed; B = 0, so it starts as the base model), optimizer and step."""
        from peft.tuners.lora import LoraLayer

        if self.seed is not None:
            torch.manual_seed(self.seed)
        with torch.no_grad():
            for module in self.model.modules():
                if isinstance(module, LoraLayer):
                    module.reset_lora_parameters("default", True)
        self.reset_optimizer()
        self.step = 0
        self.policy_version = 0
        # Published versions after a load stay ≥ 1: 0 would tell clients the adapter is the base model.
        self.version_floor = 0

    def reset_optimizer(self) -> None:
        self.optimizer = torch.optim.AdamW(self.parameters)
        self.clear_gradient()

    def clear_gradient(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.gradient: Gradient | None = None

    # -- operations -------------------------------------------------------------------------------

    def init(self, op: dict) -> dict:
        if op["lora_rank"] != self.rank:
            raise InvalidInput(f"This run trains a LoRA adapter of rank {self.rank}; init asked for rank {op['lora_rank']}.")
        self.reset()
        return {"step": self.step, "lora_rank": self.rank}

    def forward(self, op: dict) -> dict:
        mode = op["normalization"]
        if op["backward"] and self.gradient is not None and self.gradient.normalization != mode:
            raise InvalidInput(
                f"The gradient accumulated since the last optim_step is {self.gradient.normalization}-normalised and "
                f"this call asks for {mode}; take an optim_step before changing the normalisation."
            )
        rows = decode_rows(op["data"], op["loss_fn"], self.vocab_size, self.max_seq_len)
        config = op["loss_fn_config"] or {}

        def run(backward: bool) -> ForwardOutcome:
            outcome = run_forward(self.model, rows, op["loss_fn"], config, op["top_k_logprobs"], backward, self.pad_id)
            if not math.isfinite(outcome.loss_sum):
                raise InvalidInput(
                    "The loss is not finite (NaN or infinity); check the inputs (logprobs, advantages, weights) for "
                    "missing or extreme values. Nothing was accumulated."
                )
            return outcome

        if not op["backward"]:
            outcome = run(False)
        else:
            outcome = self._accumulate(lambda: run(True))
            self.gradient = Gradient(mode, (self.gradient.active_tokens if self.gradient else 0) + outcome.active_tokens)
        loss = outcome.loss_sum if mode == "sum" else outcome.loss_sum / max(outcome.active_tokens, 1)
        return {
            "loss": loss,
            "loss_sum": outcome.loss_sum,
            "active_tokens": outcome.active_tokens,
            "outputs": outcome.outputs,
            "metrics": LOSSES[op["loss_fn"]].metrics(outcome.stats),
        }

    def optim_step(self, op: dict) -> dict:
        adam = op["adam"]
        if self.gradient is None:
            # A step with nothing accumulated is a step on a zero gradient: it still counts.
            for parameter in self.parameters:
                parameter.grad = torch.zeros_like(parameter)
        elif self.gradient.normalization == "token_mean_deferred" and self.gradient.active_tokens > 0:
            for parameter in self.parameters:
                if parameter.grad is not None:
                    parameter.grad.div_(self.gradient.active_tokens)
        grads = [p.grad for p in self.parameters if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if not torch.isfinite(norm):
            self.clear_gradient()
            raise InvalidInput(
                "The accumulated gradient is not finite (NaN or infinity), so no step was taken and the gradient was "
                "dropped; check the inputs of the forward_backward calls since the last step."
            )
        if adam["grad_clip_norm"] > 0:
            torch.nn.utils.clip_grads_with_norm_(self.parameters, adam["grad_clip_norm"], norm)
        for group in self.optimizer.param_groups:
            group.update(
                lr=adam["learning_rate"], betas=(adam["beta1"], adam["beta2"]), eps=adam["eps"], weight_decay=adam["weight_decay"]
            )
        self.optimizer.step()
        self.clear_gradient()
        self.step += 1
        return {"step": self.step, "learning_rate": adam["learning_rate"], "grad_norm": float(norm)}

    def _accumulate(self, backward_pass: Callable[[], ForwardOutcome]) -> ForwardOutcome:
        """Runs a backward pass into empty `.grad`s and adds the earlier gradient back only when it
        succeeds, so a call that fails midway (a bad loss, out of memory) leaves what had accumulated intact."""
        earlier = [p.grad for p in self.parameters]
        for parameter in self.parameters:
            parameter.grad = None
        try:
            outcome = backward_pass()
        except BaseException:
            for parameter, grad in zip(self.parameters, earlier, strict=True):
                parameter.grad = grad
            raise
        for parameter, grad in zip(self.parameters, earlier, strict=True):
            if grad is not None:
                parameter.grad = grad if parameter.grad is None else parameter.grad.add_(grad)
        return outcome
