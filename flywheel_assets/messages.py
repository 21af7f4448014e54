"""What a user reads of a failed step: its own message, without Dagster's wrapping."""

from __future__ import annotations

import re


def plain_message(message: str) -> str:
    """'pkg.Failure: job failed: pkg.SomeError: what' -> 'job failed: what'."""
    return re.sub(r"\b[\w.]+\.\w*(Error|Failure|Exception): ", "", message).strip()


def step_error_message(error) -> str:
    """A step failure's own message: Dagster wraps errors other than Failure in a step error, and
    a step that failed its last retry in 'Exceeded max_retries of N' with the error as its cause."""
    retried = re.match(r"Exceeded max_retries of (\d+)", error.message)
    if retried and error.cause:
        error = error.cause
    while error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
        error = error.cause
    message = plain_message(error.message)
    return f"{message}\n(failed again after {retried.group(1)} retries)" if retried else message
