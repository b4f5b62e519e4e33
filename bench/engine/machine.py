"""What the CPU engine benchmarks record about the machine they ran on."""

from __future__ import annotations

import os
import platform


def cpu_machine(load_before: float, load_after: float) -> dict:
    """Cores, load around the run (the machine is shared) and the library versions that set the speed."""
    import peft
    import torch
    import transformers

    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
