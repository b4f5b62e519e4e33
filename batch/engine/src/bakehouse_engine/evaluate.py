"""How close a model comes to a prompted teacher (baking.md §6): the mean per-token forward
KL(teacher ‖ candidate) over the teacher's own greedy replies.

The teacher is the base model with the system prompt; each candidate sees the same questions
without it — the base model itself, or the base with a baked PEFT adapter (a downloaded
checkpoint archive) applied. A bake that worked brings the candidate's KL far below the base's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bakehouse_engine.bake.loss import forward_kl, log_probs
from bakehouse_engine.bake.sequences import build_example
from bakehouse_engine.models import load_model, pick_device
from bakehouse_engine.toy.evaluate import generate_replies


def teacher_kl(base_model: str, teacher_system: str, questions: list[str], candidates: dict[str, Path | None]) -> dict[str, float]:
    """Mean per-token KL(teacher ‖ candidate) for each named candidate (None = the bare base)."""
    device = pick_device()
    teacher, tokenizer = load_model({"base_model": base_model, "adapters": []}, None, device)
    teacher_chats = [[{"role": "system", "content": teacher_system}, {"role": "user", "content": q}] for q in questions]
    replies = generate_replies(teacher, tokenizer, teacher_chats, sample=False)
    examples = [
        build_example(
            tokenizer,
            {
                "unconditioned_stimulus": {"messages": chat},
                "conditioned_stimulus": {"messages": chat[1:]},
                "response": reply,
                "finish_reason": "stop",
            },
            max_length=4096,
        )
        for chat, reply in zip(teacher_chats, replies)
    ]
    examples = [example for example in examples if example is not None]
    teacher_logps = [_response_log_probs(teacher, e.teacher_ids, e.positions(e.teacher_start)) for e in examples]

    results: dict[str, float] = {}
    for name, adapter in candidates.items():
        candidate = teacher if adapter is None else _with_adapter(base_model, adapter, device)
        kls = [
            forward_kl(teacher_logp, _response_log_probs(candidate, e.student_ids, e.positions(e.student_start)))
            for e, teacher_logp in zip(examples, teacher_logps)
        ]
        results[name] = float(torch.cat(kls).mean())
    return results


@torch.no_grad()
def _response_log_probs(model, ids: list[int], positions: range) -> torch.Tensor:
    logits = model(torch.tensor([ids], device=model.device)).logits[0]
    return log_probs(logits[positions.start : positions.stop], 1.0)


def _with_adapter(base_model: str, adapter: Path, device: str):
    from peft import PeftModel

    base, _ = load_model({"base_model": base_model, "adapters": []}, None, device)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().eval()


def main(base: str, teacher_system: str, questions_file: Path, candidates: list[str]) -> None:
    """CLI: prints {candidate: kl} as JSON. A candidate is `name` (the bare base) or `name=adapter_dir`."""
    questions = json.loads(questions_file.read_text())
    named = {
        spec.split("=", 1)[0]: (Path(spec.split("=", 1)[1]) if "=" in spec else None) for spec in candidates
    }
    print(json.dumps(teacher_kl(base, teacher_system, questions, named)))
