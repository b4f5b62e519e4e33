"""Errors a job reports to its user, and the sentences for failures nobody raised as one.

result.json's `error` is read by people (DESIGN.md §5): one sentence that says what happened and
what to do, never a traceback, a log line or a path. The detail goes to the job's log (cli.py).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

# What each job kind is called in a sentence.
NOUNS = {"stim": "stim job", "rollout": "rollout", "bake": "bake", "sampler": "model server", "trainer": "trainer"}
MEMORY_ADVICE = {
    "bake": "lower micro_batch_size or data.max_length, or run it on a machine with more memory",
    "rollout": "lower max_concurrency or max_tokens, or run it on a machine with more memory",
    "sampler": "try again with a shorter conversation or fewer requests at once",
    "trainer": "send fewer or shorter sequences per call, or train on a machine with more memory",
}
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class JobFailure(Exception):
    """A job failed for a reason the user can act on; the message is result.json's `error`."""


class RequestFailure(Exception):
    """One request to a long-running job failed, not the job; the message is that request's error."""


def failure_sentence(error: BaseException, kind: str) -> str:
    """result.json's `error` for any exception that ended a job of `kind`."""
    noun = NOUNS.get(kind, f"{kind} job")
    if isinstance(error, JobFailure):
        return str(error)
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        return disk_full_sentence(error.errno, f"writing the {noun}'s files", kind)
    if out_of_memory(error):
        return f"The {noun} ran out of memory; {MEMORY_ADVICE.get(kind, 'run it on a machine with more memory')}, then run it again."
    if isinstance(error, KeyboardInterrupt):
        return f"The {noun} was interrupted (SIGINT) before it finished; run it again."
    return (
        f"The {noun} failed on an unexpected engine error ({type(error).__name__}); its log has the details. "
        "Run it again, and report the problem if it keeps failing."
    )


def disk_full_sentence(code: int, doing: str, kind: str) -> str:
    again = "try again" if kind == "sampler" else f"run the {NOUNS.get(kind, 'job')} again"
    if code == errno.EDQUOT:
        return f"The disk quota ran out while {doing}; free some space or raise the quota, then {again}."
    return f"No space left on disk while {doing}; free some space, then {again}."


@contextlib.contextmanager
def disk_full_is_a_failure(doing: str, kind: str) -> Iterator[None]:
    """Turns a full disk (or quota) during `doing` into a JobFailure naming what was being written."""
    try:
        yield
    except OSError as error:
        if error.errno in DISK_FULL:
            raise JobFailure(disk_full_sentence(error.errno, doing, kind)) from error
        raise


def out_of_memory(error: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError (a RuntimeError), or the plain RuntimeError of older torch and
    # other devices; matched by name so that jobs without torch never import it.
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
