"""What a user reads of a failed step: its own message, without Dagster's wrapping."""

from __future__ import annotations

import re


def plain_message(message: str) -> str:
    """'pkg.Failure: job failed: pkg.SomeError: what' -> 'job failed: what'."""
    return re.sub(r"\b[\w.]+\.\w*(Error|Failure|Exception): ", "", message).strip()


def step_error_message(error) -> str:
    """A step failure's own message: Dagster wraps errors other than Failure in a step error."""
    while error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
        error = error.cause
    return plain_message(error.message)
