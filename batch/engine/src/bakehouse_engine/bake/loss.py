"""Per-token forward KL(teacher ‖ student), the baking objective (baking.md §2).

Both distributions are `log_softmax(logits / data.temperature)`. `forward_kl` sums over the full
vocabulary; `top_k_tail_kl` is the (K+1)-bucket version of §2.5: the teacher's top-K tokens plus one
bucket holding the rest of the mass, a lower bound on the full KL that equals it when K = V.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax(logits.float() / temperature, dim=-1)


def forward_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) for each row of (tokens, vocab) log-probabilities."""
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(dim=-1)


def top_k_tail_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor, k: int) -> torch.Tensor:
    """KL over the teacher's top-k tokens plus a tail bucket, for each row."""
    vocab = teacher_logp.shape[-1]
    top_teacher, top_ids = teacher_logp.topk(min(k, vocab), dim=-1)
    top_student = student_logp.gather(-1, top_ids)
    head = (top_teacher.exp() * (top_teacher - top_student)).sum(dim=-1)
    if k >= vocab:
        return head
    in_top = torch.zeros_like(teacher_logp, dtype=torch.bool).scatter(-1, top_ids, True)
    teacher_tail = teacher_logp.masked_fill(in_top, float("-inf")).logsumexp(dim=-1)
    student_tail = student_logp.masked_fill(in_top, float("-inf")).logsumexp(dim=-1)
    return head + teacher_tail.exp() * (teacher_tail - student_tail)


def token_kl(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float, top_k: int | None
) -> torch.Tensor:
    """Per-token KL for (tokens, vocab) logits: full vocabulary unless top_k is set."""
    teacher_logp = log_probs(teacher_logits, temperature)
    student_logp = log_probs(student_logits, temperature)
    if top_k:
        return top_k_tail_kl(teacher_logp, student_logp, top_k)
    return forward_kl(teacher_logp, student_logp)
