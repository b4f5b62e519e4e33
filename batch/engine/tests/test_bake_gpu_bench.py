"""bench/engine/gpu_bench.py in its CPU smoke mode: the GPU figures' script runs end to end (both
objectives, the 32B fit check from the plan) on tiny shapes, so it is ready when a GPU is."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "engine" / "gpu_bench.py"


def test_the_gpu_bench_runs_both_objectives_and_the_fit_check_in_cpu_smoke_mode(tmp_path):
    out = tmp_path / "engine-gpu.json"
    command = [sys.executable, str(BENCH), "--cpu-smoke", "--models", "qwen3-0.6b", "--steps", "1", "--warmup", "0", "--out", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    assert report["setting"]["smoke"] is True and report["machine"]["gpu"] == "none (--cpu-smoke)"
    runs = {(row["objective"], row["micro_batch_size"]) for row in report["results"]}
    assert runs == {("after", 1), ("before", 1), ("after", 4), ("before", 4)}
    assert all(row["step_time_s"] > 0 and row["measured_steps"] == 1 for row in report["results"])
    fit = report["fit_check"]
    # The plan is of the real 32B architecture (32.8B parameters) for a 141 GB GPU; the step is a tiny stand-in.
    assert fit["model"] == "qwen3-32b" and fit["parameters"] > 32e9
    assert fit["fits"] is True and fit["plan"]["per_device_bytes"] < 141e9 and fit["step"]["measured_steps"] == 1
