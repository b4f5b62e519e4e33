"""Rollout jobs: the teacher model answers every stimulus `num_traj_per_stimulus` times (bread-api §10).

The teacher context is the stim line's `trajectory_override_stimulus`, else its
`unconditioned_stimulus`, plus the teacher prompt's tools, rendered with the model's chat template.

Each line records the token ids the bake trains on: `teacher_prompt_token_ids` (the unconditioned
stimulus as rendered here, which is the generation context unless an override stimulus was used) and
`response_token_ids` (the generated tokens). Decoding and re-tokenising the response, or re-rendering
the context without the tools, need not give back these ids.

Generation is batched (`max_concurrency` sequences at once, left-padded, with the KV cache), and
lines are appended as each batch completes, so their order is not (stimulus, trajectory) order.

Sampling is decided per row by `SeededSampler`, from a random stream seeded with (seed,
stimulus_id, trajectory_id): a trajectory's draws do not depend on which batch it ran in, so reruns and
different `max_concurrency` values reproduce it (up to the float noise of padding). The model's own
generation_config sampling defaults are not applied; only the rollout's settings are.

`extra_kwargs` (OpenAI / vLLM style) map as follows: `top_p`, `top_k` (≤ 0 = off), `min_p` → the
sampler; `repetition_penalty`, `no_repeat_ngram_size`, `min_tokens` / `min_new_tokens` → generate;
`stop` → stop strings (the response ends before the first one); `chat_template_kwargs` → the chat
template (e.g. `{"enable_thinking": false}`). Any other key is ignored and reported in
`unhonoured_config`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, LogitsProcessor
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from bakehouse_engine import storage
from bakehouse_engine.decoding import (
    MAX_UNSET_NEW_TOKENS,
    draw_from_streams,
    eos_token_ids,
    left_padded,
    one_hot_scores,
    pad_token_id,
    parse_tool_calls,
    stream_seed,
)
from bakehouse_engine.errors import JobFailure
from bakehouse_engine.models import context_length, load_model, model_display_name, pick_device, render_chat

if TYPE_CHECKING:
    from bakehouse_engine.context import JobContext

_GENERATE_KWARGS = {
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
    "min_tokens": "min_new_tokens",
    "min_new_tokens": "min_new_tokens",
}
_SAMPLER_KWARGS = ("top_p", "top_k", "min_p")


@dataclass
class GenerationSettings:
    """The rollout spec's sampling settings, split by where each is applied."""

    temperature: float
    max_tokens: int | None
    sampler: dict[str, float] = field(default_factory=dict)
    generate: dict[str, Any] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    unhonoured: list[str] = field(default_factory=list)

    @classmethod
    def from_spec(cls, rollout: dict) -> GenerationSettings:
        settings = cls(temperature=float(rollout["temperature"]), max_tokens=rollout.get("max_tokens"))
        for key, value in (rollout.get("extra_kwargs") or {}).items():
            if value is None:
                continue
            if key in _SAMPLER_KWARGS:
                settings.sampler[key] = value
            elif key in _GENERATE_KWARGS:
                settings.generate[_GENERATE_KWARGS[key]] = value
            elif key == "stop":
                settings.stop = [value] if isinstance(value, str) else list(value)
            elif key == "chat_template_kwargs":
                settings.template_kwargs = dict(value)
            elif key == "seed":
                settings.unhonoured.append("extra_kwargs.seed: the rollout's own seed decides sampling")
            else:
                settings.unhonoured.append(f"extra_kwargs.{key}: not supported by the engine's generator; ignored")
        return settings


class SeededSampler(LogitsProcessor):
    """Samples each row with its own random stream and returns a one-hot score row for greedy decoding.

    Runs last in generate's processor list (after penalties) and applies temperature, top-k, top-p
    and min-p in the order transformers does. Each row draws one uniform number per step from its
    own `random.Random` (`draw_from_streams`).
    """

    def __init__(self, settings: GenerationSettings, row_seeds: list[int]) -> None:
        self.warpers: list[LogitsProcessor] = [TemperatureLogitsWarper(settings.temperature)]
        top_k = int(settings.sampler.get("top_k", 0))
        if top_k > 0:
            self.warpers.append(TopKLogitsWarper(top_k))
        top_p = float(settings.sampler.get("top_p", 1.0))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        if settings.sampler.get("min_p") is not None:
            self.warpers.append(MinPLogitsWarper(float(settings.sampler["min_p"])))
        self.streams = [random.Random(seed) for seed in row_seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        return one_hot_scores(scores, draw_from_streams(scores, self.streams))


@dataclass
class WorkItem:
    stimulus_id: int
    trajectory_id: int
    stim_line: dict
    prompt_ids: list[int]
    teacher_ids: list[int]  # the bake's teacher context: the unconditioned stimulus, rendered as prompt_ids was


def read_jsonl(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def teacher_stimulus(stim_line: dict) -> dict:
    return stim_line.get("trajectory_override_stimulus") or stim_line["unconditioned_stimulus"]


def last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


class Generator:
    """Batched generation for one loaded model under one set of settings."""

    def __init__(self, model: Any, tokenizer: Any, settings: GenerationSettings, seed: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.seed = seed
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = pad_token_id(tokenizer, self.eos_ids)
        self.context = context_length(model)

    def max_new_tokens(self, longest_prompt: int) -> int:
        room = self.context - longest_prompt
        wanted = self.settings.max_tokens or MAX_UNSET_NEW_TOKENS
        return max(1, min(wanted, room))

    @torch.inference_mode()
    def generate(self, batch: list[WorkItem]) -> list[tuple[list[int], bool]]:
        """(completion token ids without the stop token, whether generation stopped) for each item."""
        device = self.model.device
        input_ids, attention_mask = left_padded([item.prompt_ids for item in batch], self.pad_id)
        width = input_ids.shape[1]
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.max_new_tokens(width),
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            use_cache=True,
            stop_strings=self.settings.stop or None,
            **self.settings.generate,
        )
        processors = []
        if self.settings.temperature > 0:
            seeds = [stream_seed(self.seed, item.stimulus_id, item.trajectory_id) for item in batch]
            processors.append(SeededSampler(self.settings, seeds))
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
            logits_processor=processors,
            tokenizer=self.tokenizer if self.settings.stop else None,
        )
        # Finished rows are filled with the pad token, so it ends a row as EOS does.
        ends = set(self.eos_ids) | {self.pad_id}
        results = []
        for row in output[:, width:].tolist():
            stop_at = next((index for index, token in enumerate(row) if token in ends), None)
            results.append((row if stop_at is None else row[:stop_at], stop_at is not None))
        return results

    def finish(self, ids: list[int], stopped: bool) -> tuple[str, str, int, list[int] | None]:
        """(response text, finish_reason, completion tokens, response token ids), cutting at the first stop string.

        The ids are None when a stop string ends inside a token, so no run of tokens spells the cut text.
        """
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        tokens = len(ids) + (1 if stopped else 0)
        cuts = [text.index(stop) for stop in self.settings.stop if stop in text]
        if cuts:
            cut = text[: min(cuts)]
            return cut, "stop", tokens, self.prefix_spelling(ids, cut)
        return text, ("stop" if stopped else "length"), tokens, ids

    def prefix_spelling(self, ids: list[int], text: str) -> list[int] | None:
        """The shortest prefix of ids that decodes to text, else None.

        Bisecting on the decoded length finds where to start looking; a token holding part of a
        multi-byte character decodes to U+FFFD, so the prefixes from there on are checked one by one.
        """

        def decode(end: int) -> str:
            return self.tokenizer.decode(ids[:end], skip_special_tokens=True)

        low, high = 0, len(ids)
        while low < high:
            middle = (low + high) // 2
            if len(decode(middle)) >= len(text):
                high = middle
            else:
                low = middle + 1
        for end in range(low, len(ids) + 1):
            decoded = decode(end)
            if decoded == text:
                return ids[:end]
            if len(decoded.rstrip("\ufffd")) > len(text):
                break
        return None


def build_work(
    stim_lines: list[dict], tokenizer: Any, rollout: dict, settings: GenerationSettings, context: int
) -> list[WorkItem]:
    """Every (stimulus, trajectory) pair, grouped by stimulus and ordered by prompt length."""
    items = []
    for index, stim_line in enumerate(stim_lines):
        stimulus_id = stim_line.get("stimulus_id", index)
        prompt_ids = context_ids(tokenizer, teacher_stimulus(stim_line), rollout, settings)
        teacher_ids = prompt_ids
        if stim_line.get("trajectory_override_stimulus"):
            teacher_ids = context_ids(tokenizer, stim_line["unconditioned_stimulus"], rollout, settings)
        if len(prompt_ids) >= context:
            raise JobFailure(
                f"Stimulus {stimulus_id}'s teacher context is {len(prompt_ids)} tokens, which does not fit the "
                f"model's {context}-token context; shorten the teacher prompt or the question."
            )
        for trajectory_id in range(rollout["num_traj_per_stimulus"]):
            items.append(WorkItem(stimulus_id, trajectory_id, stim_line, prompt_ids, teacher_ids))
    # Similar lengths in a batch waste less padding; the stable sort keeps a stimulus's trajectories together.
    items.sort(key=lambda item: len(item.prompt_ids))
    return items


def context_ids(tokenizer: Any, stimulus: dict, rollout: dict, settings: GenerationSettings) -> list[int]:
    """A stimulus rendered with the teacher prompt's tools and the rollout's template switches, as token ids."""
    tools = rollout.get("tools") or stimulus.get("tools")
    text = render_chat(tokenizer, stimulus["messages"], tools, True, **settings.template_kwargs)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def rollout_line(
    item: WorkItem,
    response: str,
    response_ids: list[int] | None,
    finish_reason: str,
    tokens: int,
    model_name: str,
    settings: GenerationSettings,
) -> dict:
    stim_line = item.stim_line
    line = {
        "stimulus_id": item.stimulus_id,
        "trajectory_id": item.trajectory_id,
        "stimulus": last_user_text(teacher_stimulus(stim_line)["messages"]),
        "unconditioned_stimulus": stim_line["unconditioned_stimulus"],
        "conditioned_stimulus": stim_line["conditioned_stimulus"],
        "response": response,
    }
    message = parse_tool_calls(response, f"call_{item.stimulus_id}_{item.trajectory_id}")
    if message is not None:
        line["response_message"] = message
        if finish_reason == "stop":
            finish_reason = "tool_calls"
    line.update(finish_reason=finish_reason, model=model_name, temperature=settings.temperature, tokens=tokens)
    if settings.template_kwargs:
        # The bake must render both contexts with the same template switches (e.g. enable_thinking).
        line["chat_template_kwargs"] = settings.template_kwargs
    line["teacher_prompt_token_ids"] = item.teacher_ids
    if response_ids is not None:
        line["response_token_ids"] = response_ids
    return line


def run(ctx: JobContext) -> dict:
    rollout = ctx.spec["rollout"]
    settings = GenerationSettings.from_spec(rollout)
    stim_lines = read_jsonl(rollout["stim_output_uri"])
    if not stim_lines:
        raise JobFailure("The stim output has no stimuli to roll out; run stim with at least one question.")
    model, tokenizer = load_model(rollout["model"], None, pick_device())
    generator = Generator(model, tokenizer, settings, rollout["seed"])
    if settings.max_tokens and settings.max_tokens > generator.context:
        settings.unhonoured.append(
            f"max_tokens: capped to the model's {generator.context}-token context, less the prompt"
        )
    work = build_work(stim_lines, tokenizer, rollout, settings, generator.context)
    model_name = model_display_name(rollout["model"])
    batch_size = rollout["max_concurrency"]
    ctx.progress.update(0.0, 0)
    for start in range(0, len(work), batch_size):
        batch = work[start : start + batch_size]
        for item, (ids, stopped) in zip(batch, generator.generate(batch)):
            response, finish_reason, tokens, response_ids = generator.finish(ids, stopped)
            ctx.output.append(rollout_line(item, response, response_ids, finish_reason, tokens, model_name, settings))
        ctx.progress.update(100.0 * ctx.output.count / len(work), ctx.output.count)
    return {"lines": ctx.output.count, "unhonoured_config": settings.unhonoured}
