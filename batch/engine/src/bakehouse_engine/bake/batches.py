"""Micro-batches of training examples: which examples go together, and their padded token tensors.

Each epoch the examples are shuffled with the seed (epoch 0 keeps the collated order, itself
shuffled) and cut into optimizer steps of micro_batch_size × gradient_accumulation_steps examples,
as before; within a step, the examples are sorted by length before they are cut into micro-batches,
so each micro-batch holds examples of similar length and little of it is padding. A step's loss is
Σ token KL / Σ response tokens over all of its examples, so how they are split into micro-batches
does not change the update: grouping saves padding without changing what is trained. (Grouping
across steps, as transformers' `LengthGroupedSampler` does, would also cut padding when a step is
one micro-batch, but it puts the long examples into the same few steps every epoch, which trains
them less: on the toy bake it left the last epoch's mean loss 7× higher.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from bakehouse_engine.bake.sequences import TrainingExample


@dataclass
class Side:
    """Padded sequences (student or teacher) and where their loss positions are."""

    ids: torch.Tensor
    mask: torch.Tensor
    rows: torch.Tensor  # (tokens,) batch row of each loss position
    cols: torch.Tensor  # (tokens,) sequence position of each loss position
    tokens: int  # non-padding tokens

    @classmethod
    def build(cls, sequences: list[list[int]], starts: list[int], counts: list[int], pad_id: int) -> Side:
        width = max(len(sequence) for sequence in sequences)
        ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        rows, cols = [], []
        for row, (sequence, start, count) in enumerate(zip(sequences, starts, counts)):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
            rows.extend([row] * count)
            cols.extend(range(start - 1, start - 1 + count))
        return cls(ids, mask, torch.tensor(rows), torch.tensor(cols), int(mask.sum()))

    def hidden(self, decoder: Any, device: torch.device) -> torch.Tensor:
        """(loss positions, hidden) final hidden states, gathered before any LM head runs."""
        output = decoder(input_ids=self.ids.to(device), attention_mask=self.mask.to(device), use_cache=False)
        return output.last_hidden_state[self.rows.to(device), self.cols.to(device)]


def student_side(examples: list[TrainingExample], pad_id: int) -> Side:
    return Side.build([e.student_ids for e in examples], [e.student_start for e in examples], [e.count for e in examples], pad_id)


def teacher_side(examples: list[TrainingExample], pad_id: int) -> Side:
    return Side.build([e.teacher_ids for e in examples], [e.teacher_start for e in examples], [e.count for e in examples], pad_id)


@dataclass
class MicroBatch:
    indices: list[int]  # the examples' indices, which key the teacher cache
    student: Side
    count: int  # loss positions
    weight: float = 1.0  # 0 for a repeat that only keeps the processes of a distributed bake in step (ranks.py)

    @classmethod
    def build(cls, examples: list[TrainingExample], indices: list[int], pad_id: int, weight: float = 1.0) -> MicroBatch:
        chosen = [examples[index] for index in indices]
        return cls(indices, student_side(chosen, pad_id), sum(example.count for example in chosen), weight)


def epoch_steps(examples: list[TrainingExample], micro_batch_size: int, accumulate: int, seed: int, epoch: int) -> list[list[list[int]]]:
    """One epoch as optimizer steps, each a list of micro-batches of example indices."""
    order = list(range(len(examples)))
    if epoch:
        random.Random(seed + epoch).shuffle(order)
    per_step = micro_batch_size * accumulate
    steps = []
    for start in range(0, len(order), per_step):
        ranked = sorted(order[start : start + per_step], key=lambda index: len(examples[index].student_ids), reverse=True)
        steps.append([ranked[i : i + micro_batch_size] for i in range(0, len(ranked), micro_batch_size)])
    return steps
