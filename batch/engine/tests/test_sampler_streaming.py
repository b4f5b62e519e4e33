"""What a reply may stream and when: held-back text, tool calls, per-row sampling and chunk coalescing."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import torch
from transformers.generation.logits_process import TopPLogitsWarper

from bakehouse_engine.sampler.generation import ReplyStreamer, RowSampler, top_p_filter
from bakehouse_engine.sampler.outbox import COALESCE_S, Outbox
from bakehouse_engine.sampler.replies import Reply

EOS = 0


class RecordingOutbox:
    def __init__(self) -> None:
        self.added: list[tuple[int, str]] = []
        self.done: dict | None = None
        self.stopped = False

    def add(self, index: int, text: str) -> None:
        self.added.append((index, text))

    def finish(self, done: dict) -> None:
        self.done = done


def stream(pieces: list[bytes | int], stop: list[str] = (), tools: bool = False, limit: int = 50) -> tuple[Reply, RecordingOutbox]:
    """Feeds byte-level tokens (EOS as 0) to a one-choice reply; returns it and what it streamed."""
    vocab = {index: piece for index, piece in enumerate(pieces, start=1) if isinstance(piece, bytes)}
    request = {"id": "r", "tools": [{"type": "function"}] if tools else None, "params": {"n": 1, "stop": list(stop)}}
    outbox = RecordingOutbox()
    reply = Reply(request, prompt_ids=[7, 7, 7], limit=limit, outbox=outbox)

    def decode(ids: list[int]) -> str:
        return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")

    for token, piece in enumerate(pieces, start=1):
        if reply.choices[0].finish_reason is None:
            reply.advance(reply.choices[0], EOS if piece == EOS else token, {EOS}, decode)
    return reply, outbox


def texts(outbox: RecordingOutbox) -> list[str]:
    return [text for _, text in outbox.added]


def test_a_possible_stop_string_is_held_back_until_it_is_not_one():
    _, outbox = stream([b"Hi", b" E", b"X", b" E", b"N", b"D", b"more"], stop=["END"])
    assert texts(outbox) == ["Hi", " ", "EX", " "]
    assert outbox.done["choices"] == [{"index": 0, "finish_reason": "stop", "tool_calls": None}]
    assert outbox.done["usage"] == {"prompt_tokens": 3, "completion_tokens": 6}


def test_half_a_character_waits_for_its_other_half():
    _, outbox = stream([b"caf", b"\xc3", b"\xa9", EOS])
    assert texts(outbox) == ["caf", "\u00e9"]
    assert outbox.done["usage"]["completion_tokens"] == 4  # the end token counts, as in rollouts


def test_the_length_limit_ends_a_choice():
    _, outbox = stream([b"a", b"b", b"c", b"d"], limit=3)
    assert "".join(texts(outbox)) == "abc" and outbox.done["choices"][0]["finish_reason"] == "length"


def test_tool_call_markup_is_never_streamed_and_parsed_calls_end_the_reply():
    call = b'{"name": "lookup", "arguments": {"q": "sea"}}'
    _, outbox = stream([b"Sure.", b"\n<tool", b"_call>", call, b"</tool_call>", EOS], tools=True)
    assert "".join(texts(outbox)) == "Sure.\n"
    (choice,) = outbox.done["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["tool_calls"] == [{"id": "call_r_0_0", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "sea"}'}}]


def test_markup_that_does_not_parse_is_sent_as_text_at_the_end():
    _, outbox = stream([b"Hm <tool_call>", b"not json", EOS], tools=True)
    assert texts(outbox) == ["Hm ", "<tool_call>not json"]
    assert outbox.done["choices"][0] == {"index": 0, "finish_reason": "stop", "tool_calls": None}


def test_rows_of_a_reply_nobody_waits_for_end_at_once():
    reply, outbox = stream([b"a"], limit=10)
    other, _ = stream([b"b"], limit=10)
    streamer = ReplyStreamer([(reply, reply.choices[0]), (other, other.choices[0])], {EOS}, lambda ids: "x" * len(ids))
    outbox.stopped = True
    assert streamer(torch.tensor([[5, 1], [5, 1]]), None).tolist() == [True, False]


def test_each_row_samples_with_its_own_settings_and_stream():
    torch.manual_seed(0)
    scores = torch.randn(3, 50)
    for p in (0.3, 0.9):
        assert torch.equal(top_p_filter(scores[:1], torch.tensor([p])), TopPLogitsWarper(p)(None, scores[:1].clone()))

    def tokens(rows, temperatures, top_ps, seeds, steps=20):
        sampler = RowSampler(temperatures, top_ps, seeds)
        return torch.stack([sampler(None, scores[rows]).argmax(dim=-1) for _ in range(steps)], dim=1)

    together = tokens([0, 1, 2], [0, 1.0, 0.8], [1.0, 1.0, 0.5], [1, 2, 3])
    assert torch.equal(together[0], scores[0].argmax().repeat(20))  # temperature 0 is greedy
    assert torch.equal(together[1], tokens([1], [1.0], [1.0], [2])[0])  # a row's draws do not depend on its neighbours
    assert len(set(together[1].tolist())) > 1


def test_text_merges_while_it_waits_and_the_end_goes_out_at_once():
    outbox = Outbox(SimpleNamespace(wakeup=threading.Condition(), gone=False), "r")
    assert outbox.due_at() is None
    outbox.add(0, "a")
    assert outbox.due_at() == 0.0  # the first text goes out at once
    assert outbox.take_chunk() == {"seq": 0, "deltas": [{"index": 0, "content": "a"}], "done": None, "error": None}
    outbox.posted_at = 100.0
    outbox.add(1, "x")
    outbox.add(0, "b")
    outbox.add(0, "c")
    assert outbox.due_at() == 100.0 + COALESCE_S
    outbox.finish({"choices": []})
    assert outbox.due_at() == 0.0
    assert outbox.take_chunk() == {
        "seq": 1,
        "deltas": [{"index": 0, "content": "bc"}, {"index": 1, "content": "x"}],
        "done": {"choices": []},
        "error": None,
    }
