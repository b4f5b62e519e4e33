"""What a job module (stim, rollout, bake, sampler) is handed by the CLI."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from bakehouse_engine.outputs import Metrics, OutputLines, Progress


@dataclass
class JobContext:
    spec: dict
    output_uri: str
    workdir: pathlib.Path  # scratch space, removed when the job ends
    output: OutputLines
    progress: Progress
    metrics: Metrics
