"""The frugal objective against the plain one it replaces, on the tiny model.

The reference is the objective computed the plain way: the whole model's logits for every position,
float32 log-softmax over the full vocabulary for teacher and student, the KL summed over the
response positions, gradients by autograd. The frugal one gathers hidden states at the response
positions, runs the head in float32 a chunk of positions at a time with its own gradient, and takes
the teacher from the cache. Both are float32 at the head, so they differ by rounding only: the
value must agree to 1e-4 relative, each LoRA gradient to 1e-3 relative plus 5e-4 of its largest entry
(measured: up to 1e-4 of the largest entry with top-K, whose tail bucket sums many small terms).
"""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import LlamaConfig, LlamaForCausalLM

from bakehouse_engine.bake.batches import student_side, teacher_side
from bakehouse_engine.bake.loss import FullTeacher, Head, TopKTeacher, head_kl, log_probs
from bakehouse_engine.bake.model_parts import Heads, decoder
from bakehouse_engine.bake.sequences import TrainingExample
from bakehouse_engine.bake.teacher import TeacherCache
from bakehouse_engine.models import load_model
from job_harness import tiny_model, tiny_model_cache  # noqa: F401

VALUE_TOLERANCE = 1e-4
GRADIENT_RTOL, GRADIENT_ATOL = 1e-3, 5e-4


def examples(vocab: int, shapes: list[tuple[int, int, int]], seed: int = 0) -> list[TrainingExample]:
    """(student prompt, teacher prompt, response) lengths → examples of random token ids."""
    generator = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(3, vocab, (n,), generator=generator).tolist()

    made = []
    for student_prompt, teacher_prompt, response in shapes:
        target = ids(response)
        made.append(TrainingExample(ids(student_prompt) + target, ids(teacher_prompt) + target, student_prompt, teacher_prompt, response))
    return made


# Several lengths in one micro-batch: prompts and responses of different sizes on both sides.
SHAPES = [(5, 12, 9), (11, 3, 4), (2, 20, 15), (8, 8, 1)]


def lora_model(tiny_model, target_modules) -> torch.nn.Module:
    model, _ = load_model({"base_model": tiny_model, "adapters": []}, "fp32", "cpu")
    torch.manual_seed(3)
    # Random A and B, so the student differs from the teacher and both factors get gradients.
    config = LoraConfig(r=4, lora_alpha=32, target_modules=target_modules, init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def top_k_tail_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor, k: int) -> torch.Tensor:
    """baking.md §2.5 over whole (tokens, vocab) log-probabilities."""
    top_teacher, top_ids = teacher_logp.topk(k, dim=-1)
    head = (top_teacher.exp() * (top_teacher - student_logp.gather(-1, top_ids))).sum(-1)
    in_top = torch.zeros_like(teacher_logp, dtype=torch.bool).scatter(-1, top_ids, True)
    teacher_tail = teacher_logp.masked_fill(in_top, float("-inf")).logsumexp(-1)
    student_tail = student_logp.masked_fill(in_top, float("-inf")).logsumexp(-1)
    return head + teacher_tail.exp() * (teacher_tail - student_tail)


def reference_kl(model, batch: list[TrainingExample], temperature: float, top_k: int | None) -> torch.Tensor:
    def response_logits(side):
        logits = model(input_ids=side.ids, attention_mask=side.mask).logits
        return logits[side.rows, side.cols]

    with torch.no_grad(), model.disable_adapter():
        teacher = log_probs(response_logits(teacher_side(batch, 0)), temperature)
    student = log_probs(response_logits(student_side(batch, 0)), temperature)
    if top_k:
        return top_k_tail_kl(teacher, student, top_k).sum()
    return (teacher.exp() * (teacher - student)).sum()


def frugal_kl(model, batch: list[TrainingExample], temperature: float, top_k: int | None, chunk_tokens: int | None = None) -> torch.Tensor:
    heads = Heads(model)
    teacher, _ = TeacherCache(batch, heads, 0, temperature, top_k).targets(model, list(range(len(batch))), torch.device("cpu"))
    hidden = student_side(batch, 0).hidden(decoder(model), torch.device("cpu"))
    return head_kl(hidden, heads.student(), teacher, temperature, chunk_tokens)


def value_and_lora_grads(model, loss_fn) -> tuple[float, dict[str, torch.Tensor]]:
    model.eval()  # no dropout either way; the LoRA has none
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


@pytest.mark.parametrize("top_k", [None, 5])
@pytest.mark.parametrize("target_modules", ["all-linear", ["q_proj", "v_proj", "lm_head"]])
@pytest.mark.parametrize("chunk_tokens", [None, 4])
def test_the_frugal_objective_has_the_reference_value_and_lora_gradients(tiny_model, top_k, target_modules, chunk_tokens):
    model = lora_model(tiny_model, target_modules)
    vocab = model.get_base_model().config.vocab_size
    batch = examples(vocab, SHAPES)
    temperature = 1.5

    expected, expected_grads = value_and_lora_grads(model, lambda: reference_kl(model, batch, temperature, top_k))
    value, grads = value_and_lora_grads(model, lambda: frugal_kl(model, batch, temperature, top_k, chunk_tokens))

    assert expected > 1e-3
    assert value == pytest.approx(expected, rel=VALUE_TOLERANCE)
    assert set(grads) == set(expected_grads)
    if "lm_head" in target_modules:
        assert any("lm_head" in name for name in grads)
    for name, grad in expected_grads.items():
        assert grad.abs().max() > 0, name
        assert torch.allclose(grads[name], grad, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL * grad.abs().max().item()), name


def test_top_k_covering_the_vocabulary_is_the_full_kl(tiny_model):
    model = lora_model(tiny_model, "all-linear")
    vocab = model.get_base_model().config.vocab_size
    batch = examples(vocab, SHAPES)
    with torch.no_grad():
        full = frugal_kl(model, batch, 1.0, None).item()
        assert frugal_kl(model, batch, 1.0, vocab).item() == pytest.approx(full, rel=VALUE_TOLERANCE)
        assert frugal_kl(model, batch, 1.0, vocab - 1).item() == pytest.approx(full, rel=VALUE_TOLERANCE)
        assert frugal_kl(model, batch, 1.0, 3).item() < full


class LargestOutput(TorchDispatchMode):
    """Records the most elements any tensor operation produced while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("top_k", [None, 5])
def test_the_chunked_kl_never_makes_a_whole_tokens_by_vocabulary_tensor(top_k):
    tokens, hidden_size, vocab, chunk = 96, 16, 300, 32
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(vocab, hidden_size, generator=generator)
    teacher = FullTeacher(torch.randn(tokens, hidden_size, generator=generator), Head(weight))
    if top_k:
        teacher = TopKTeacher.from_full(teacher, top_k, 1.0, chunk)
    hidden = torch.randn(tokens, hidden_size, generator=generator, requires_grad=True)
    trainable = torch.nn.Parameter(weight.clone())

    with LargestOutput() as seen:
        head_kl(hidden, Head(trainable), teacher, 1.0, chunk).backward()
    assert hidden.grad.shape == (tokens, hidden_size) and trainable.grad.shape == (vocab, hidden_size)
    assert seen.largest <= chunk * vocab

    # The detector does see a whole (tokens, vocab) tensor when one is made.
    with LargestOutput() as plain:
        log_probs(hidden @ trainable.T, 1.0).sum().backward()
    assert plain.largest == tokens * vocab


def bf16_model() -> torch.nn.Module:
    config = LlamaConfig(
        vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)  # logits of a trained model's size (tens), where bf16 rounding shows
    model = model.to(torch.bfloat16)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    return get_peft_model(model, config).eval()


def test_a_bf16_model_gets_its_kl_from_a_float32_head(tiny_model):
    model = bf16_model()
    batch = examples(4096, [(6, 10, 24), (9, 4, 30)], seed=1)
    heads = Heads(model)
    assert heads.teacher.weight.dtype == torch.float32
    with torch.no_grad():
        with model.disable_adapter():
            teacher_hidden = teacher_side(batch, 0).hidden(decoder(model), torch.device("cpu"))
        student_hidden = student_side(batch, 0).hidden(decoder(model), torch.device("cpu"))
        weight = model.get_base_model().lm_head.weight

        def float64_kl() -> float:
            teacher = torch.log_softmax(teacher_hidden.double() @ weight.double().T, -1)
            student = torch.log_softmax(student_hidden.double() @ weight.double().T, -1)
            return (teacher.exp() * (teacher - student)).sum().item()

        def bf16_logits_kl() -> float:  # the head in the model's dtype, as model(...).logits gives it
            teacher = log_probs(teacher_hidden @ weight.T, 1.0)
            student = log_probs(student_hidden @ weight.T, 1.0)
            return (teacher.exp() * (teacher - student)).sum().item()

        reference = float64_kl()
        frugal = head_kl(student_hidden, heads.student(), FullTeacher(teacher_hidden, heads.teacher), 1.0).item()
    bf16_error, fp32_error = abs(bf16_logits_kl() - reference), abs(frugal - reference)
    assert fp32_error < 1e-4 * reference
    assert fp32_error * 100 < bf16_error
