"""The baking objective: per-token forward KL, full vocabulary and top-K plus a tail bucket."""

import torch

from bakehouse_engine.bake.loss import forward_kl, log_probs, token_kl, top_k_tail_kl


def logits(seed: int, tokens: int = 6, vocab: int = 50) -> torch.Tensor:
    return torch.randn(tokens, vocab, generator=torch.Generator().manual_seed(seed)) * 3


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


def test_top_k_with_tail_equals_full_kl_when_k_is_the_vocabulary():
    teacher, student = log_probs(logits(2), 1.0), log_probs(logits(3), 1.0)
    full = forward_kl(teacher, student)
    assert torch.allclose(top_k_tail_kl(teacher, student, 50), full, atol=1e-5)
    # With one token left over, the tail bucket holds it alone, so the value is still exact.
    assert torch.allclose(top_k_tail_kl(teacher, student, 49), full, atol=1e-5)


def test_top_k_with_tail_is_a_lower_bound_on_the_full_kl():
    teacher, student = log_probs(logits(4), 1.0), log_probs(logits(5), 1.0)
    full = forward_kl(teacher, student)
    for k in (1, 5, 20):
        bucketed = top_k_tail_kl(teacher, student, k)
        assert (bucketed >= -1e-6).all()
        assert (bucketed <= full + 1e-5).all()


def test_top_k_gradient_is_finite_and_moves_the_student_toward_the_teacher():
    teacher = logits(6)
    student = logits(7).requires_grad_()
    token_kl(teacher, student, 1.0, 5).sum().backward()
    assert torch.isfinite(student.grad).all()
    stepped = (student - 0.5 * student.grad).detach()
    assert token_kl(teacher, stepped, 1.0, 5).sum() < token_kl(teacher, student.detach(), 1.0, 5).sum()


def test_temperature_softens_both_distributions():
    teacher, student = logits(8), logits(9)
    assert token_kl(teacher, student, 4.0, None).sum() < token_kl(teacher, student, 1.0, None).sum()
