"""Generating a batch of replies at once: each request contributes `n` rows, left-padded and decoded
together with the KV cache. A chat reply's rows stream their text as they go; a token-level
request's rows (tokens.py) keep their tokens and raw log-probs, and may also score their prompt.

Rows differ in temperature, top-p, top-k, length limit and stop conditions, so those are applied
per row here rather than through generate's batch-wide settings. Each row samples from its own random
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
from bakehouse_engine.sampler.replies import Reply
from bakehouse_engine.sampler.tokens import TokenReply

if TYPE_CHECKING:
    from bakehouse_engine.sampler.adapters import HotAdapters


def top_p_filter(scores: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Nucleus filtering with each row's own top_p, as transformers' TopPLogitsWarper does for one."""
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p).unsqueeze(1)
    remove[:, -1] = False  # the most likely token always stays
    return scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))


def top_k_filter(scores: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    """Keeps each row's `top_k` highest scores (ties at the k-th included); 0 keeps every score."""
    top_k = top_k.clamp(max=scores.shape[1])  # more than the vocabulary keeps it all
    k = int(top_k.max())
    if k == 0:
        return scores
    kth = scores.topk(k, dim=-1).values.gather(1, (top_k - 1).clamp(min=0).unsqueeze(1))
    return scores.masked_fill((top_k > 0).unsqueeze(1) & (scores < kth), float("-inf"))


class RowSampler(LogitsProcessor):
    """Picks each row's token with its own temperature, top-k and top-p from its own stream; temperature 0
    is greedy. With `logprobs`, `picked_logprobs` holds each row's raw log-prob of the token just picked."""

    def __init__(
        self,
        temperatures: list[float],
        top_ps: list[float],
        seeds: list[int],
        top_ks: list[int] | None = None,
        logprobs: bool = False,
    ) -> None:
        self.temperature = torch.tensor(temperatures)
        self.top_p = torch.tensor(top_ps)
        self.top_k = torch.tensor(top_ks if top_ks is not None else [0] * len(temperatures))
        self.streams = [random.Random(seed) for seed in seeds]
        self.logprobs = logprobs
        self.picked_logprobs: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        if self.temperature.device != scores.device:
            self.temperature, self.top_p, self.top_k = (
                setting.to(scores.device) for setting in (self.temperature, self.top_p, self.top_k)
            )
        greedy = self.temperature == 0
        tempered = scores / torch.where(greedy, 1.0, self.temperature).unsqueeze(1)
        warped = top_p_filter(top_k_filter(tempered, self.top_k), self.top_p)
        # Greedy rows draw too and ignore it: one draw over the whole batch beats splitting it.
        sampled = draw_from_streams(warped, self.streams)
        picked = torch.where(greedy, scores.argmax(dim=-1), sampled)
        if self.logprobs:
            self.picked_logprobs = torch.log_softmax(scores, dim=-1).gather(1, picked.unsqueeze(1)).squeeze(1).tolist()
        return one_hot_scores(scores, picked)


class ReplyStreamer(StoppingCriteria):
    """Runs after every generation step: hands each row's new token to its reply and ends finished rows.

    A row ends at an end token, a stop string or token, its length limit, or when its reply is no
    longer wanted. Token-level rows also get the token's raw log-prob from the `sampler` that picked it.
    """

    def __init__(
        self, rows: list[tuple[Any, Any]], end_ids: set[int], decode: Any, sampler: RowSampler | None = None
    ) -> None:
        self.rows = rows
        self.end_ids = end_ids
        self.decode = decode
        self.sampler = sampler

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        finished = []
        for row, ((reply, choice), token) in enumerate(zip(self.rows, input_ids[:, -1].tolist())):
            if reply.outbox.stopped:
                finished.append(True)
                continue
            if choice.finish_reason is None:
                if reply.wants_logprobs:
                    reply.advance(choice, token, self.end_ids, self.decode, logprob=self.sampler.picked_logprobs[row])
                else:
                    reply.advance(choice, token, self.end_ids, self.decode)
            finished.append(choice.finish_reason is not None)
        return torch.tensor(finished, device=input_ids.device)


class ReplyGenerator:
    """Turns requests into prompts and generates batches of replies with one tokenizer and base model."""

    def __init__(
        self, model: Any, tokenizer: Any, adapters: HotAdapters | None = None, max_unset_tokens: int = MAX_UNSET_NEW_TOKENS
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.adapters = adapters  # runs rows with different adapters (generate's adapter_names)
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = pad_token_id(tokenizer, self.eos_ids)
        # A row that draws the pad token ends there, as rollouts treat it.
        self.end_ids = set(self.eos_ids) | {self.pad_id}
        self.context = context_length(model)
        self.max_unset_tokens = max_unset_tokens  # the job's max_unset_tokens: a request without max_tokens stops there
        self.vocab_size = model.get_input_embeddings().num_embeddings
        # generate() fills every setting a GenerationConfig leaves at its default from the model's own
        # generation_config.json, whose repetition penalty or sampling defaults would change the logits
        # RowSampler sees. Each request says how it samples: the model's suggestions play no part.
        model.generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=self.pad_id)

    def prepare(self, request: dict, outbox: Outbox) -> Reply | TokenReply:
        if request["kind"] == "tokens":
            return self._prepare_tokens(request, outbox)
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
        limit = min(params["max_tokens"] or self.max_unset_tokens, self.context - len(prompt_ids))
        return Reply(request, prompt_ids, limit, outbox)

    def _prepare_tokens(self, request: dict, outbox: Outbox) -> TokenReply:
        sample = request["sample"]
        prompt = sample["prompt_tokens"]
        outside = sorted({token for token in [*prompt, *sample["stop_token_ids"]] if token >= self.vocab_size})
        if outside:
            raise RequestFailure(
                f"Token id {outside[0]} is outside the model's vocabulary of {self.vocab_size} tokens; "
                "tokenize with the base model's tokenizer."
            )
        if len(prompt) >= self.context:
            raise RequestFailure(
                f"The prompt is {len(prompt)} tokens, which leaves no room in the model's {self.context}-token "
                "context; shorten it."
            )
        limit = min(sample["max_tokens"] or self.max_unset_tokens, self.context - len(prompt))
        return TokenReply(request, limit, outbox)

    @torch.inference_mode()
    def generate(self, replies: list[Reply | TokenReply], adapter_names: list[str] | None = None) -> None:
        """Generates every choice of every reply; the replies stream and end themselves as rows finish.

        With `adapter_names` (one per reply, from HotAdapters.row_adapter), each reply's rows run with
        its adapter; without, every row runs with the adapters active on the model.
        """
        if adapter_names is not None and (self.adapters is None or len(adapter_names) != len(replies)):
            raise ValueError("adapter_names needs HotAdapters and one name per reply")
        self._score_prompts(replies, adapter_names)
        rows = [(reply, choice) for reply in replies for choice in reply.choices]
        if adapter_names is None:
            row_adapters: Any = nullcontext()
        else:
            row_names = [name for reply, name in zip(replies, adapter_names) for _ in reply.choices]
            row_adapters = self.adapters.rows(row_names)
        input_ids, attention_mask = left_padded([reply.prompt_ids for reply, _ in rows], self.pad_id)
        sampler = RowSampler(
            [reply.params["temperature"] for reply, _ in rows],
            [reply.params["top_p"] for reply, _ in rows],
            [self._row_seed(reply, choice) for reply, choice in rows],
            # Chat has no top-k.
            top_ks=[reply.params.get("top_k", 0) for reply, _ in rows],
            logprobs=any(reply.wants_logprobs for reply in replies),
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
                stopping_criteria=StoppingCriteriaList([ReplyStreamer(rows, self.end_ids, self._decode, sampler)]),
            )

    def _score_prompts(self, replies: list[Reply | TokenReply], adapter_names: list[str] | None) -> None:
        """Prompt log-probs, for the token-level requests that ask: one forward over each prompt alone,
        with its reply's adapter, so no padding touches them."""
        for index, reply in enumerate(replies):
            if not (isinstance(reply, TokenReply) and reply.wants_prompt_logprobs):
                continue
            adapter = nullcontext() if adapter_names is None else self.adapters.rows([adapter_names[index]])
            ids = torch.tensor([reply.prompt_ids], device=self.model.device)
            with adapter:
                reply.score_prompt(self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0])

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @staticmethod
    def _row_seed(reply: Reply | TokenReply, choice: Any) -> int:
        seed = reply.params["seed"]
        return stream_seed(seed, choice.index) if seed is not None else random.SystemRandom().getrandbits(63)
