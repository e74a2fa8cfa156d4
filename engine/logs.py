"""Plain-text logging: time, level, mode, message, and the workspace/run id when there is one."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

LOG_FORMAT = "%(asctime)s %(levelname)s %(mode)s %(name)s: %(message)s%(context)s"

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})  # noqa: B039
_mode = "engine"


class ContextFilter(logging.Filter):
    """Adds the process mode and the current workspace/run ids to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.mode = _mode
        ids = _context.get()
        record.context = "".join(f" {key}={value}" for key, value in ids.items()) if ids else ""
        return True


PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")
"""Celery's "received" and "succeeded" lines, two per task: the engine logs one line per run
itself (with its workspace and run ids), and Celery's failures still come through at ERROR."""


def configure_logging(mode: str, *, debug: bool = False) -> None:
    """Send plain-text lines to stderr; DEBUG_ALL turns on debug output everywhere."""
    global _mode
    _mode = mode
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        # These libraries are chatty at INFO and log nothing an operator acts on.
        for name in ("botocore", "boto3", "urllib3", "pymongo", "s3transfer", "werkzeug", *PER_TASK_LOGGERS):
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Within the block, every log line carries these ids (e.g. workspace=..., run=...)."""
    merged = {**_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)
