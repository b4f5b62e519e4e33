"""Generating a batch of chat replies at once: each request contributes `params.n` rows, left-padded
and decoded together with the KV cache, and every row streams its text as it goes.

Rows differ in temperature, top-p, length limit and stop strings, so those are applied per row
here rather than through generate's batch-wide settings. Each row samples from its own random
stream, seeded from (seed, choice index) when the request sets a seed: the same seed gives the
same reply whatever else shares the batch (up to the float noise of padding).

Rows may also differ in the checkpoint they run with: given one adapter name per reply, every row
of that reply runs with it (PEFT's mixed-batch inference, set up by adapters.HotAdapters.rows).
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from jinja2 import TemplateError
from transformers import GenerationConfig, LogitsProcessor, StoppingCriteria, StoppingCriteriaList

from bakehouse_engine.decoding import (
    MAX_UNSET_NEW_TOKENS,
    draw_from_streams,
    eos_token_ids,
    left_padded,
    one_hot_scores,
    pad_token_id,
    stream_seed,
)
from bakehouse_engine.errors import JobFailure, RequestFailure
from bakehouse_engine.models import context_length, render_chat
from bakehouse_engine.sampler.outbox import Outbox
from bakehouse_engine.sampler.replies import Choice, Reply

if TYPE_CHECKING:
    from bakehouse_engine.sampler.adapters import HotAdapters


def top_p_filter(scores: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Nucleus filtering with each row's own top_p, as transformers' TopPLogitsWarper does for one."""
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p).unsqueeze(1)
    remove[:, -1] = False  # the most likely token always stays
    return scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))


class RowSampler(LogitsProcessor):
    """Picks each row's token with its own temperature and top-p from its own stream; temperature 0 is greedy."""

    def __init__(self, temperatures: list[float], top_ps: list[float], seeds: list[int]) -> None:
        self.temperature = torch.tensor(temperatures)
        self.top_p = torch.tensor(top_ps)
        self.streams = [random.Random(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        if self.temperature.device != scores.device:
            self.temperature, self.top_p = self.temperature.to(scores.device), self.top_p.to(scores.device)
        greedy = self.temperature == 0
        warped = top_p_filter(scores / torch.where(greedy, 1.0, self.temperature).unsqueeze(1), self.top_p)
        # Greedy rows draw too and ignore it: one draw over the whole batch beats splitting it.
        sampled = draw_from_streams(warped, self.streams)
        return one_hot_scores(scores, torch.where(greedy, scores.argmax(dim=-1), sampled))


class ReplyStreamer(StoppingCriteria):
    """Runs after every generation step: hands each row's new token to its reply and ends finished rows.

    A row ends at an end token, a stop string, its length limit, or when its reply is no longer wanted.
    """

    def __init__(self, rows: list[tuple[Reply, Choice]], end_ids: set[int], decode: Any) -> None:
        self.rows = rows
        self.end_ids = end_ids
        self.decode = decode

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        finished = []
        for (reply, choice), token in zip(self.rows, input_ids[:, -1].tolist()):
            if reply.outbox.stopped:
                finished.append(True)
                continue
            if choice.finish_reason is None:
                reply.advance(choice, token, self.end_ids, self.decode)
            finished.append(choice.finish_reason is not None)
        return torch.tensor(finished, device=input_ids.device)


class ReplyGenerator:
    """Turns requests into prompts and generates batches of replies with one tokenizer and base model."""

    def __init__(self, model: Any, tokenizer: Any, adapters: HotAdapters | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.adapters = adapters  # runs rows with different adapters (generate's adapter_names)
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = pad_token_id(tokenizer, self.eos_ids)
        # A row that draws the pad token ends there, as rollouts treat it.
        self.end_ids = set(self.eos_ids) | {self.pad_id}
        self.context = context_length(model)

    def prepare(self, request: dict, outbox: Outbox) -> Reply:
        params = request["params"]
        try:
            text = render_chat(
                self.tokenizer, request["messages"], request["tools"], True, **params["chat_template_kwargs"]
            )
        except (JobFailure, TemplateError, TypeError, ValueError) as error:
            raise RequestFailure(f"The model's chat template could not render the messages: {error}") from error
        prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) >= self.context:
            raise RequestFailure(
                f"The conversation is {len(prompt_ids)} tokens, which does not fit the model's {self.context}-token "
                "context; shorten it."
            )
        limit = min(params["max_tokens"] or MAX_UNSET_NEW_TOKENS, self.context - len(prompt_ids))
        return Reply(request, prompt_ids, limit, outbox)

    @torch.inference_mode()
    def generate(self, replies: list[Reply], adapter_names: list[str] | None = None) -> None:
        """Generates every choice of every reply; the replies stream and end themselves as rows finish.

        With `adapter_names` (one per reply, from HotAdapters.row_adapter), each reply's rows run with
        its adapter; without, every row runs with the adapters active on the model.
        """
        rows = [(reply, choice) for reply in replies for choice in reply.choices]
        if adapter_names is None:
            row_adapters: Any = nullcontext()
        else:
            if self.adapters is None or len(adapter_names) != len(replies):
                raise ValueError("adapter_names needs HotAdapters and one name per reply")
            row_adapters = self.adapters.rows([name for reply, name in zip(replies, adapter_names) for _ in reply.choices])
        input_ids, attention_mask = left_padded([reply.prompt_ids for reply, _ in rows], self.pad_id)
        sampler = RowSampler(
            [reply.params["temperature"] for reply, _ in rows],
            [reply.params["top_p"] for reply, _ in rows],
            [self._row_seed(reply, choice) for reply, choice in rows],
        )
        config = GenerationConfig(
            do_sample=False,  # RowSampler has chosen each token; greedy decoding takes it
            max_new_tokens=max(reply.limit for reply in replies),
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            use_cache=True,
        )
        with row_adapters:
            self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention_mask.to(self.model.device),
                generation_config=config,
                logits_processor=[sampler],
                stopping_criteria=StoppingCriteriaList([ReplyStreamer(rows, self.end_ids, self._decode)]),
            )

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @staticmethod
    def _row_seed(reply: Reply, choice: Choice) -> int:
        seed = reply.params["seed"]
        return stream_seed(seed, choice.index) if seed is not None else random.SystemRandom().getrandbits(63)
