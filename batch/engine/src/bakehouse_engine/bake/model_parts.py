"""The two halves of a causal LM as the bake's objective sees them: the decoder, which gives the final
hidden states, and the LM head's weights, which loss.py applies in float32 at the loss positions only.
"""

from __future__ import annotations

from typing import Any

import torch

from bakehouse_engine.bake.loss import Head
from bakehouse_engine.errors import JobFailure


def causal_lm(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder(model: Any) -> Any:
    """The stack of layers below the LM head, with the final norm: it returns `last_hidden_state`."""
    return causal_lm(model).get_decoder()


class Heads:
    """The teacher's head (the frozen weights, in float32, made once) and the student's.

    The student's head is the same unless the adapter trains the LM head (LoRA on `lm_head`); then it
    is the frozen weight plus the adapter's delta, differentiable with respect to the adapter.
    """

    def __init__(self, model: Any) -> None:
        from peft.tuners.lora import LoraLayer
        from peft.utils import ModulesToSaveWrapper

        module = causal_lm(model).get_output_embeddings()
        if isinstance(module, ModulesToSaveWrapper):
            raise JobFailure(
                "model.peft_config modules_to_save with the LM head is not supported by bakes; "
                "train the head with LoRA (add lm_head to target_modules) or leave it frozen."
            )
        self._lora = module if isinstance(module, LoraLayer) else None
        base = module.get_base_layer() if self._lora is not None else module
        if self._lora is not None and any(
            not isinstance(self._lora.lora_dropout[name], torch.nn.Identity) for name in self._lora.active_adapters
        ):
            raise JobFailure("LoRA on lm_head needs lora_dropout 0 in bakes; set it to 0 or leave lm_head out of target_modules.")
        bias = base.bias.detach().float() if getattr(base, "bias", None) is not None else None
        self.teacher = Head(base.weight.detach().float(), bias)

    def student(self) -> Head:
        if self._lora is None:
            return self.teacher
        delta = sum(self._lora.get_delta_weight(name) for name in self._lora.active_adapters)
        return Head(self.teacher.weight + delta.float(), self.teacher.bias)
