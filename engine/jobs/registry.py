"""Job handlers by kind, and the context a handler runs with.

    @job_handler("flow-run")
    def run_flow(job: Job, ctx: JobContext) -> dict | None:
        while work_left():
            if ctx.should_stop():
                return None
            ...
        return {"ok": True}

A handler returns the job's result (a JSON-able dict or None) or raises: the exception's
`type` attribute (else its class name) and message become the job's error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.jobs.model import Job
from engine.services import Services

log = logging.getLogger(__name__)

Handler = Callable[[Job, "JobContext"], "dict[str, Any] | None"]
_HANDLERS: dict[str, Handler] = {}


class UnknownJobKind(Exception):
    """No handler is registered for this job kind in this process."""


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register fn(job, ctx) -> result as the handler of `kind` (one per kind)."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


def handler_for(kind: str) -> Handler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise UnknownJobKind(f"no handler for job kind {kind!r} in this worker") from None


def registered_kinds() -> list[str]:
    return sorted(_HANDLERS)


class JobContext:
    """What a running handler may use: services, a cheap stop flag, and a logger."""

    def __init__(self, services: Services, job: Job):
        self.services = services
        self.job = job
        self._stop = threading.Event()
        self.logs: list[str] = []

    def should_stop(self) -> bool:
        """True once a stop was requested (cached; refreshed by the lease renewer every few seconds)."""
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Set by the lease renewer when the job document says stopRequested."""
        self._stop.set()

    def log(self, message: str) -> None:
        """A line in the worker's log, tagged with the job."""
        self.logs.append(message)
        log.info("job %s: %s", self.job.id, message)
