"""Command line: `run <spec>` runs one job; `toy-model build` makes the toy instruct model.

`run` owns the job's envelope (DESIGN.md §5): it validates the spec, gives the job module its
outputs, and writes result.json last. The exit code is 0 exactly when the job completed; 1 when it
failed; 2 when the spec itself was unusable. Job kinds: `stim`, `rollout` and `bake` run to an end;
`sampler` serves chat requests and `trainer` a training run's operations by relay until idle or
replaced, and neither writes output lines.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from bakehouse_engine import storage
from bakehouse_engine.context import JobContext
from bakehouse_engine.distributed import is_main_node
from bakehouse_engine.errors import JobFailure, failure_sentence
from bakehouse_engine.outputs import EngineLog, Metrics, OutputLines, Progress
from bakehouse_engine.spec import SpecError, load_spec

EXIT_COMPLETE = 0
EXIT_FAILED = 1
EXIT_BAD_SPEC = 2

# Job modules are imported on demand, so a stim job never loads torch.
JOB_MODULES = {
    "stim": "bakehouse_engine.stim",
    "rollout": "bakehouse_engine.rollout",
    "bake": "bakehouse_engine.bake",
    "sampler": "bakehouse_engine.sampler",
    "trainer": "bakehouse_engine.trainer",
}
KINDS_WITH_LINES = ("stim", "rollout")
# What the `ml` extra installs; the CPU image (stim only) goes without.
ML_PACKAGES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "jinja2", "requests")

log = logging.getLogger("bakehouse_engine")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format=EngineLog.FORMAT, stream=sys.stderr)
    # The job's log keeps the engine's own INFO lines even where logging was configured before.
    log.setLevel(logging.INFO)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_job(args.spec)
    if args.command == "kl":
        from bakehouse_engine.evaluate import main as kl_main

        kl_main(args.base, args.teacher_system, args.questions, args.candidate)
        return 0
    if args.out is None and args.seed != 0:
        parser.error("--seed applies to a build into --out; the cached toy model is always built with seed 0")
    return _toy_model_build(args.out, args.seed)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bakehouse_engine", description="The Bakehouse engine.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one job and write result.json under its output_uri")
    run.add_argument("spec", help="the job spec: a local path, file:// or s3:// URI")
    kl = commands.add_parser("kl", help="mean per-token KL(prompted teacher ‖ candidate) on held-out questions, as JSON")
    kl.add_argument("--base", required=True, help="base model name, e.g. bakehouse/toy-instruct")
    kl.add_argument("--teacher-system", required=True, help="the teacher's system prompt")
    kl.add_argument("--questions", required=True, type=Path, help="a JSON file with a list of questions")
    kl.add_argument("--candidate", action="append", default=[], help="`name` (the bare base) or `name=adapter_dir`; repeatable")
    toy = commands.add_parser("toy-model", help="the toy instruct model used by tests and the demo")
    toy_actions = toy.add_subparsers(dest="action", required=True)
    build = toy_actions.add_parser(
        "build", help="build the toy model into --out, or into the model cache when it is missing there"
    )
    build.add_argument("--out", type=Path, help="directory to write the model to (files already there are overwritten)")
    build.add_argument("--seed", type=int, default=0, help="training seed (default 0; only with --out)")
    return parser


def run_job(source: str) -> int:
    try:
        spec = load_spec(source)
    except SpecError as error:
        log.error("%s", error)
        if error.output_uri:
            storage.write_json(storage.join(error.output_uri, "result.json"), {"status": "failed", "error": str(error)})
        return EXIT_BAD_SPEC

    kind, output_uri = spec["kind"], spec["output_uri"]
    workdir = Path(tempfile.mkdtemp(prefix=f"bakehouse-{kind}-{spec['job_id']}-"))
    if not is_main_node():
        # Another node of a multi-node bake: it trains, and the main node writes the job's outputs.
        output_uri = (workdir / "node-outputs").as_uri() + "/"
    engine_log = EngineLog(output_uri, workdir)
    try:
        log.info("%s job %s starting; output under %s", kind, spec["job_id"], output_uri)
        output = OutputLines(output_uri, workdir)
        metrics = Metrics(output_uri, workdir)
        ctx = JobContext(spec, output_uri, workdir, output, Progress(output_uri, (output, metrics)), metrics)
        result = _run_and_close(ctx)
        if kind in KINDS_WITH_LINES:
            result.setdefault("lines", output.count)
        log.info("%s job %s %s%s", kind, spec["job_id"], result["status"], f": {result['error']}" if result["error"] else "")
        # Published before the result, so whoever reads a failed result finds the log behind it.
        _publish_log(engine_log)
        storage.write_json(storage.join(output_uri, "result.json"), result)
    finally:
        _publish_log(engine_log)
        shutil.rmtree(workdir, ignore_errors=True)
    return EXIT_COMPLETE if result["status"] == "complete" else EXIT_FAILED


def _run_and_close(ctx: JobContext) -> dict:
    """Runs the job module and flushes its outputs; any failure becomes a failed result.

    The result's error is a sentence (errors.py); the traceback goes to the log only.
    """
    kind = ctx.spec["kind"]
    try:
        with _stop_signals_fail_the_job():
            extra = _job_module(kind).run(ctx)
            ctx.output.close()
            ctx.metrics.close()
            ctx.progress.update(100.0, ctx.output.count)
        return {"status": "complete", "error": None, **extra}
    except JobFailure as error:
        log.info("%s job failed", kind, exc_info=error)
        failure = str(error)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 — every failure must reach result.json
        log.exception("%s job failed on an unexpected error", kind)
        failure = failure_sentence(error, kind)
    _close_quietly(ctx)
    return {"status": "failed", "error": failure}


def _job_module(kind: str) -> ModuleType:
    try:
        return importlib.import_module(JOB_MODULES[kind])
    except ModuleNotFoundError as error:
        if error.name in ML_PACKAGES:
            raise JobFailure(
                f"This engine install cannot run {kind} jobs: {error.name} is missing. Run them on the GPU image, "
                "or install the engine with its ml extra."
            ) from error
        raise


def _close_quietly(ctx: JobContext) -> None:
    """Publishes what a failed job wrote; a second error must not hide the first."""
    for close in (ctx.output.close, ctx.metrics.close, ctx.progress.flush):
        try:
            close()
        except Exception:  # noqa: BLE001
            log.exception("could not publish the outputs of the failed job")


def _publish_log(engine_log: EngineLog) -> None:
    """A log that cannot be published must not keep the result from being written."""
    try:
        engine_log.close()
    except Exception:  # noqa: BLE001
        log.exception("could not publish the engine log")


@contextlib.contextmanager
def _stop_signals_fail_the_job() -> Iterator[None]:
    """AWS Batch and the local runtime stop a job with SIGTERM; report that instead of dying silently."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise JobFailure(f"The job was stopped ({signal.Signals(signum).name}) before it finished; run it again.")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _toy_model_build(out: Path | None, seed: int) -> int:
    from bakehouse_engine.toy import build_toy_model, ensure_toy_model

    if out is None:
        print(ensure_toy_model())
    else:
        build_toy_model(out, seed=seed)
        print(out)
    return EXIT_COMPLETE
