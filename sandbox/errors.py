"""Errors of the custom code runner.

`ErrorType` holds the stable strings a failed job reports in `error.type`; callers and users
match on them, so never rename one. The exception classes are for Python callers (the client and
the settings loader); each exception's docstring is its default message.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    """Why a job failed: the `error.type` of a failed job and of a 4xx answer."""

    SYNTAX_ERROR = "syntax_error"
    """The code does not parse; `line` points at the problem."""
    FORBIDDEN = "forbidden"
    """The code used something the sandbox refuses (an import, an attribute, a builtin, a host)."""
    TIME_LIMIT = "time_limit"
    """The job ran longer than its timeout (wall clock or CPU) and was killed."""
    MEMORY_LIMIT = "memory_limit"
    """The job tried to use more memory than its limit."""
    RECURSION_LIMIT = "recursion_limit"
    """The job recursed deeper than the interpreter's recursion limit."""
    OUTPUT_LIMIT = "output_limit"
    """The job's result is larger than the node output limit."""
    RUNTIME_ERROR = "runtime_error"
    """The code raised an exception (its type and message are in `message`)."""
    INVALID_RESULT = "invalid_result"
    """The job's result is not JSON-serialisable, or the code defines neither run() nor result."""
    INVALID_REQUEST = "invalid_request"
    """The request body is malformed; `field` names the offending field (HTTP 400)."""
    RUNNER_BUSY = "runner_busy"
    """Every job space stayed taken for the whole queue wait (HTTP 429)."""
    RUNNER_ERROR = "runner_error"
    """The runner itself failed (its job process pool died); the job may be retried."""


class SandboxError(Exception):
    """The custom code runner could not serve the request."""

    def __init__(self, message: str | None = None):
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class SettingsError(SandboxError):
    """The runner's environment variables are invalid."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid runner settings:\n" + "\n".join(f"- {p}" for p in self.problems))


class RunnerBusy(SandboxError):
    """The runner has no free job space: retry later or on another runner."""

    def __init__(self, message: str | None = None, *, retry_after_seconds: float = 1.0):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class RunnerUnavailable(SandboxError):
    """The runner could not be reached or failed: retry later."""


class InvalidJob(SandboxError):
    """The runner refused the job request as malformed."""

    def __init__(self, message: str | None = None, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class BadRequest(SandboxError):
    """The job request is malformed (server side; becomes a 400 naming the field)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
