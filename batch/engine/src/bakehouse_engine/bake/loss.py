"""Per-token forward KL(teacher ‖ student), the baking objective (baking.md §2), from hidden states.

Both distributions are `log_softmax(logits / data.temperature)`. The full-vocabulary KL sums over
every token; the top-K version is the (K+1)-bucket KL of §2.5 (the teacher's top-K tokens plus one
bucket holding the rest of the mass), a lower bound on the full KL that equals it when K = V.

`head_kl` takes the student's final hidden states at the loss positions and the LM head's weight
rather than logits: it runs the head in float32 (bf16 logits put noise of ~10⁻³ into a KL whose
converged value is about that size) over a chunk of positions at a time, and works out the gradient
of each chunk as it goes (∂KL/∂logits = (q − target) / temperature), as fused linear losses do, so
`[tokens, vocab]` float32 tensors never exist whole: at a 152k vocabulary they take ~600 KB per token
each, and a long response would not fit. Only the chunk's `[chunk, hidden]` gradients are kept for
the backward pass. Taking the weight rather than the model keeps the objective independent of how
the model is sharded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Elements of one [chunk, vocab] float32 tensor (128 MiB): about 220 positions at a 152k vocabulary.
CHUNK_ELEMENTS = 2**25


def default_chunk_tokens(vocab: int) -> int:
    return max(1, CHUNK_ELEMENTS // vocab)


def log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax(logits.float() / temperature, dim=-1)


def forward_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) for each row of (tokens, vocab) log-probabilities."""
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(dim=-1)


@dataclass
class Head:
    """An LM head as the objective applies it: logits = hidden @ weight.T + bias, in float32."""

    weight: torch.Tensor  # (vocab, hidden)
    bias: torch.Tensor | None = None

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden.float() @ self.weight.float().T
        return logits if self.bias is None else logits + self.bias.float()


@dataclass
class FullTeacher:
    """The teacher's whole distribution, kept as its hidden states at the loss positions and its head.

    The hidden states are H numbers per token where the log-probabilities are V (150k), so this is
    how a full-vocabulary teacher is cached; its log-probabilities are rebuilt a chunk at a time.
    """

    hidden: torch.Tensor  # (tokens, hidden)
    head: Head

    def log_probs(self, start: int, stop: int, temperature: float) -> torch.Tensor:
        return log_probs(self.head.logits(self.hidden[start:stop]), temperature)


@dataclass
class TopKTeacher:
    """The teacher's top-K log-probabilities and the log of the mass outside them, per loss position."""

    ids: torch.Tensor  # (tokens, K) token ids
    log_probs: torch.Tensor  # (tokens, K)
    tail: torch.Tensor  # (tokens,) log of the remaining mass; -inf when K covers the vocabulary

    @classmethod
    def from_full(cls, teacher: FullTeacher, k: int, temperature: float, chunk_tokens: int | None = None) -> TopKTeacher:
        chunk = chunk_tokens or default_chunk_tokens(teacher.head.weight.shape[0])
        parts = []
        for start in range(0, teacher.hidden.shape[0], chunk):
            logp = teacher.log_probs(start, start + chunk, temperature)
            top, ids = logp.topk(min(k, logp.shape[-1]), dim=-1)
            parts.append((ids.to(torch.int32), top, _logsumexp_outside(logp, ids)))
        ids, top, tail = (torch.cat(column) for column in zip(*parts))
        return cls(ids, top, tail)

    def select(self, start: int, stop: int) -> TopKTeacher:
        return TopKTeacher(self.ids[start:stop], self.log_probs[start:stop], self.tail[start:stop])


Teacher = FullTeacher | TopKTeacher


def _logsumexp_outside(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log Σ exp(logp) over each row's entries not in `ids`."""
    return logp.scatter(-1, ids.long(), float("-inf")).logsumexp(dim=-1)


def _chunk_kl(student_logp: torch.Tensor, teacher: Teacher, start: int, stop: int, temperature: float):
    """Per-token KL of one chunk and its gradient with respect to the student's scaled logits."""
    student_p = student_logp.exp()
    if isinstance(teacher, FullTeacher):
        teacher_logp = teacher.log_probs(start, stop, temperature)
        return forward_kl(teacher_logp, student_logp), student_p.sub_(teacher_logp.exp())
    chunk = teacher.select(start, stop)
    ids = chunk.ids.long()
    student_top = student_logp.gather(-1, ids)
    kl = (chunk.log_probs.exp() * (chunk.log_probs - student_top)).sum(dim=-1)
    student_tail = _logsumexp_outside(student_logp, ids)
    has_tail = torch.isfinite(chunk.tail)
    tail_kl = chunk.tail.exp() * (chunk.tail - student_tail)
    kl = kl + torch.where(has_tail, tail_kl, torch.zeros_like(tail_kl))
    # The bucketed KL's target is p on the top-K tokens and q · p_tail / q_tail on the rest.
    tail_ratio = torch.where(has_tail, chunk.tail - student_tail, torch.full_like(tail_kl, float("-inf")))
    target = (student_logp + tail_ratio[:, None]).exp_().scatter_(-1, ids, chunk.log_probs.exp())
    return kl, student_p.sub_(target)


class _HeadKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, teacher, temperature, chunk_tokens):
        head = Head(weight.float(), None if bias is None else bias.float())
        wants_hidden, wants_weight, wants_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden, dtype=torch.float32) if wants_hidden else None
        grad_weight = torch.zeros_like(head.weight) if wants_weight else None
        grad_bias = torch.zeros_like(head.bias) if wants_bias else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_tokens):
            stop = min(start + chunk_tokens, hidden.shape[0])
            chunk_hidden = hidden[start:stop].float()
            student_logp = log_probs(head.logits(chunk_hidden), temperature)
            kl, grad_scaled = _chunk_kl(student_logp, teacher, start, stop, temperature)
            del student_logp
            total += kl.sum()
            grad_logits = grad_scaled.div_(temperature)
            if grad_hidden is not None:
                grad_hidden[start:stop] = grad_logits @ head.weight
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.T, chunk_hidden)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(dim=0)
        ctx.save_for_backward(
            *(grad if grad is not None else torch.empty(0) for grad in (grad_hidden, grad_weight, grad_bias))
        )
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.present = (grad_hidden is not None, grad_weight is not None, grad_bias is not None)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grads = [
            (grad * grad_output).to(dtype) if present else None
            for grad, dtype, present in zip(ctx.saved_tensors, ctx.dtypes, ctx.present)
        ]
        return (*grads, None, None, None)


def head_kl(
    hidden: torch.Tensor, head: Head, teacher: Teacher, temperature: float, chunk_tokens: int | None = None
) -> torch.Tensor:
    """Σ over the loss positions of KL(teacher ‖ student), the student's logits being head(hidden).

    `hidden` is (tokens, hidden) in any dtype; `teacher` covers the same positions in the same order.
    Differentiable with respect to `hidden` and the head's weight and bias.
    """
    chunk = chunk_tokens or default_chunk_tokens(head.weight.shape[0])
    if hidden.shape[0] == 0:
        return hidden.new_zeros((), dtype=torch.float32)
    return _HeadKL.apply(hidden, head.weight, head.bias, teacher, temperature, chunk)
