"""Cooperative I/O for the API process: gevent, patched in before anything else is imported.

An action run's request waits for its answer (up to ACTION_RUN_WAIT_SECONDS). With a thread per
request, one API process could wait on as many runs as it had threads (16) and every other
request, health checks included, queued behind them. The API serves requests on gevent instead
(a gunicorn worker on gevent's WSGI server, engine/api_worker.py): a waiting request is a
greenlet parked on its socket, so a process waits on up to API_WORKER_CONNECTIONS at once and
stays responsive.

gevent must patch the standard library before `ssl`, `socket` and `threading` are imported (the
`engine` command imports pymongo, which imports them, at once). So the entry point calls
`patch_if_api_process` first, and decides from the environment alone: this module imports nothing
of the engine. Only a process that is the API alone is patched; workers, the orchestrator and the
runner keep real threads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

API_WORKER_CONNECTIONS = 1000
"""Concurrent connections (so: waiting action runs) one gevent API worker process serves."""
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
"""How the mode variables say "yes" (the same words engine.config accepts)."""
OTHER_MODE_VARIABLES = ("IS_INSTANT_TASKS_WORKER", "IS_QUEUED_TASKS_WORKER", "IS_ORCHESTRATOR")

_patched = False


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in TRUE_VALUES


def is_api_process(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether `engine <argv>` with this environment runs the API mode alone."""
    return (
        list(argv[:1]) == ["run"]
        and _flag(environ, "IS_API")
        and not any(_flag(environ, name) for name in OTHER_MODE_VARIABLES)
    )


def patch_if_api_process(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Monkey-patch the standard library for gevent if this process is the API; whether it did.

    Call it before importing anything else (see the module docstring)."""
    global _patched
    if not is_api_process(sys.argv[1:] if argv is None else argv, os.environ if environ is None else environ):
        return False
    from gevent import monkey

    monkey.patch_all()
    _patched = True
    return True


def is_patched() -> bool:
    """Whether this process was patched for gevent (so gunicorn may use its gevent worker)."""
    return _patched
