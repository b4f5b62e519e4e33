"""The teacher's distribution at each example's loss positions, computed once per example.

The teacher is the model with the adapter disabled (baking.md §3.1): frozen, so its distribution
over an example does not change between epochs. The first time an example is trained on, the
teacher pass runs (no gradients, eval mode) and its result is kept in host memory for later epochs:
- full vocabulary: the teacher's final hidden states at the loss positions (loss.FullTeacher), H
  numbers per token from which the head rebuilds the exact log-probabilities a chunk at a time;
- `data.top_k` set: the top-K log-probabilities and the tail's log-mass (loss.TopKTeacher), K + 1
  numbers per token, so later epochs run no teacher softmax at all.
Entries are kept while they fit in `budget_bytes` (by default half the host memory available when
the bake starts); an example whose entry does not fit has its teacher pass run again each epoch.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

from bakehouse_engine.bake.batches import teacher_side
from bakehouse_engine.bake.loss import FullTeacher, Teacher, TopKTeacher
from bakehouse_engine.bake.model_parts import Heads, decoder
from bakehouse_engine.bake.sequences import TrainingExample


def available_host_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # no SC_AVPHYS_PAGES (macOS): a quarter of the physical memory
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def _nbytes(teacher: Teacher) -> int:
    if isinstance(teacher, FullTeacher):
        return teacher.hidden.nbytes
    return teacher.ids.nbytes + teacher.log_probs.nbytes + teacher.tail.nbytes


def _to(teacher: Teacher, device: torch.device | str) -> Teacher:
    if isinstance(teacher, FullTeacher):
        return FullTeacher(teacher.hidden.to(device), teacher.head)
    return TopKTeacher(teacher.ids.to(device), teacher.log_probs.to(device), teacher.tail.to(device))


def _concat(parts: list[Teacher]) -> Teacher:
    if isinstance(parts[0], FullTeacher):
        return FullTeacher(torch.cat([part.hidden for part in parts]), parts[0].head)
    return TopKTeacher(*(torch.cat(column) for column in zip(*((p.ids, p.log_probs, p.tail) for p in parts))))


class TeacherCache:
    def __init__(
        self,
        examples: list[TrainingExample],
        heads: Heads,
        pad_id: int,
        temperature: float,
        top_k: int | None,
        budget_bytes: int | None = None,
    ) -> None:
        self.examples = examples
        self.heads = heads
        self.pad_id = pad_id
        self.temperature = temperature
        self.top_k = top_k
        self.budget_bytes = available_host_memory() // 2 if budget_bytes is None else budget_bytes
        self.entries: dict[int, Teacher] = {}
        self.used_bytes = 0

    def targets(
        self, model: Any, indices: list[int], device: torch.device, run_decoder: Any = None,
        any_process: Callable[[bool], bool] = bool,
    ) -> tuple[Teacher, int]:
        """The teacher's distribution over these examples' loss positions, in order, on `device`, and the
        number of teacher tokens that had to run through the model for it (0 when all were cached).

        `run_decoder`: the decoder to call (a sharded one in a distributed bake). `any_process(flag)`: whether
        any process of the bake needs a teacher pass; a sharded decoder needs every process in each pass,
        so one whose examples are all cached runs its first example again.
        """
        missing = [index for index in indices if index not in self.entries]
        if any_process(bool(missing)) and not missing:
            missing = indices[:1]
        run_decoder = run_decoder or decoder(model)
        fresh, teacher_tokens = self._teacher_pass(model, run_decoder, missing, device) if missing else ({}, 0)
        parts = [fresh[index] if index in fresh else _to(self.entries[index], device) for index in indices]
        return _concat(parts), teacher_tokens

    def _teacher_pass(self, model: Any, run_decoder: Any, indices: list[int], device: torch.device) -> tuple[dict[int, Teacher], int]:
        examples = [self.examples[index] for index in indices]
        side = teacher_side(examples, self.pad_id)
        model.eval()
        with torch.no_grad(), model.disable_adapter():
            hidden = side.hidden(run_decoder, device)
        model.train()
        fresh: dict[int, Teacher] = {}
        for index, part in zip(indices, hidden.split([example.count for example in examples])):
            teacher: Teacher = FullTeacher(part, self.heads.teacher)
            if self.top_k:
                teacher = TopKTeacher.from_full(teacher, self.top_k, self.temperature)
            fresh[index] = teacher
            if index not in self.entries and self.used_bytes + _nbytes(teacher) <= self.budget_bytes:
                self.entries[index] = _to(teacher, "cpu")
                self.used_bytes += _nbytes(teacher)
        return fresh, side.tokens

