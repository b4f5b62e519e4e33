"""Errors a job reports to its user."""


class JobFailure(Exception):
    """A job failed for a reason the user can act on; the message is result.json's `error`."""


class RequestFailure(Exception):
    """One request to a long-running job failed, not the job; the message is that request's error."""
