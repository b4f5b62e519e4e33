"""The baking objective: per-token forward KL, full vocabulary and top-K plus a tail bucket.

The head here is the identity (hidden states = logits), so the objective is checked on logits.
"""

import torch

from bakehouse_engine.bake.loss import FullTeacher, Head, TopKTeacher, forward_kl, head_kl, log_probs


def logits(seed: int, tokens: int = 6, vocab: int = 50) -> torch.Tensor:
    return torch.randn(tokens, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def teacher_of(teacher_logits: torch.Tensor, temperature: float, top_k: int | None):
    teacher = FullTeacher(teacher_logits, Head(torch.eye(teacher_logits.shape[-1])))
    return TopKTeacher.from_full(teacher, top_k, temperature) if top_k else teacher


def token_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """Per-token KL, one head_kl call per token."""
    teacher = teacher_of(teacher_logits, temperature, top_k)
    head = Head(torch.eye(student_logits.shape[-1]))
    rows = []
    for row in range(student_logits.shape[0]):
        one = FullTeacher(teacher.hidden[row : row + 1], teacher.head) if isinstance(teacher, FullTeacher) else teacher.select(row, row + 1)
        rows.append(head_kl(student_logits[row : row + 1], head, one, temperature))
    return torch.stack(rows)


def test_kl_is_zero_when_student_equals_teacher():
    same = logits(0)
    assert torch.allclose(token_kl(same, same.clone(), 1.0, None), torch.zeros(6), atol=1e-6)
    assert torch.allclose(token_kl(same, same.clone(), 1.0, 5), torch.zeros(6), atol=1e-6)


def test_kl_is_positive_when_they_differ_and_matches_torch():
    teacher, student = logits(0), logits(1)
    kl = token_kl(teacher, student, 1.0, None)
    assert (kl > 0).all()
    reference = torch.nn.functional.kl_div(
        log_probs(student, 1.0), log_probs(teacher, 1.0), log_target=True, reduction="none"
    ).sum(-1)
    assert torch.allclose(kl, reference, atol=1e-5)
    assert torch.allclose(forward_kl(log_probs(teacher, 1.0), log_probs(student, 1.0)), reference, atol=1e-5)


def test_top_k_with_tail_equals_full_kl_when_k_is_the_vocabulary():
    teacher, student = logits(2), logits(3)
    full = token_kl(teacher, student, 1.0, None)
    assert torch.allclose(token_kl(teacher, student, 1.0, 50), full, atol=1e-5)
    # With one token left over, the tail bucket holds it alone, so the value is still exact.
    assert torch.allclose(token_kl(teacher, student, 1.0, 49), full, atol=1e-5)


def test_top_k_with_tail_is_a_lower_bound_on_the_full_kl():
    teacher, student = logits(4), logits(5)
    full = token_kl(teacher, student, 1.0, None)
    for k in (1, 5, 20):
        bucketed = token_kl(teacher, student, 1.0, k)
        assert (bucketed >= -1e-6).all()
        assert (bucketed <= full + 1e-5).all()


def test_the_top_k_cache_keeps_k_plus_one_numbers_per_token():
    teacher = teacher_of(logits(6), 1.0, 5)
    assert teacher.ids.shape == (6, 5) and teacher.log_probs.shape == (6, 5) and teacher.tail.shape == (6,)
    full = log_probs(logits(6), 1.0)
    assert torch.allclose(teacher.log_probs, full.topk(5, dim=-1).values)
    assert torch.allclose(teacher.tail.exp(), 1 - teacher.log_probs.exp().sum(-1), atol=1e-6)


def test_gradients_are_finite_and_move_the_student_toward_the_teacher():
    teacher = logits(6)
    for top_k in (None, 5):
        student = logits(7).requires_grad_()
        token_kl(teacher, student, 1.0, top_k).sum().backward()
        assert torch.isfinite(student.grad).all()
        stepped = (student - 0.5 * student.grad).detach()
        assert token_kl(teacher, stepped, 1.0, top_k).sum() < token_kl(teacher, student.detach(), 1.0, top_k).sum()


def test_the_gradient_is_autograd_s_on_the_plain_formula():
    teacher, student = logits(8, tokens=10), logits(9, tokens=10).requires_grad_()
    head_kl(student, Head(torch.eye(50)), teacher_of(teacher, 2.0, None), 2.0, chunk_tokens=3).backward()
    plain = student.detach().clone().requires_grad_()
    forward_kl(log_probs(teacher, 2.0), log_probs(plain, 2.0)).sum().backward()
    assert torch.allclose(student.grad, plain.grad, atol=1e-6)


def test_temperature_softens_both_distributions():
    teacher, student = logits(8), logits(9)
    assert token_kl(teacher, student, 4.0, None).sum() < token_kl(teacher, student, 1.0, None).sum()
