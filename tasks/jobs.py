"""Queued-queue tasks of the job system, and the queued worker's heartbeat.

`queued.execute_job(job_id, token)` runs one dispatched job (engine/jobs/execution.py);
`queued.reconcile` runs one recovery pass (engine/jobs/reconcile.py).

Each queued-worker pool process records a heartbeat in Redis every HEARTBEAT_SECONDS (the
dispatcher sends at most one message per live worker) and dispatches once when it starts, so a
new worker picks up waiting work at once.

ENGINE_EXTRA_JOB_MODULES (comma-separated module names, tests and plug-ins) are imported here,
so their @job_handler kinds exist in every worker.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading

from celery.signals import worker_process_init, worker_process_shutdown

from engine.config import Mode
from engine.jobs import execution
from engine.jobs.dispatch import dispatch
from engine.jobs.reconcile import reconcile
from engine.store.job_backlog import Backlog
from tasks.app import celery_app
from tasks.runtime import services

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TTL_SECONDS = 8.0
"""A worker not heard from for this long no longer counts as a free slot."""
EXTRA_MODULES_VARIABLE = "ENGINE_EXTRA_JOB_MODULES"

for _name in filter(None, (m.strip() for m in os.environ.get(EXTRA_MODULES_VARIABLE, "").split(","))):
    importlib.import_module(_name)


def worker_id() -> str:
    """Stable across pool-process replacement: host and the Celery main process's pid."""
    return f"{socket.gethostname()}-{os.getppid()}"


@celery_app.task(name="queued.execute_job", ignore_result=True)
def execute_job(job_id: str, token: str) -> str:
    """Run one dispatched job (a no-op if the dispatch is stale or the job is already taken)."""
    return execution.execute(services(), job_id, token, f"{worker_id()}-{os.getpid()}")


@celery_app.task(name="queued.reconcile", ignore_result=True)
def reconcile_jobs() -> dict:
    """One recovery pass: expired leases, lost messages, stale slots, lost lanes, dispatch."""
    report = reconcile(services())
    return {"requeued": len(report.requeued), "failed": len(report.failed), "resent": len(report.resent)}


class _Heartbeat(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="queued-worker-heartbeat", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        first = True
        while not self.stopped.is_set():
            try:
                current = services()
                Backlog(current.redis).heartbeat(worker_id(), HEARTBEAT_TTL_SECONDS)
                if first:
                    dispatch(current)
                    first = False
            except Exception as error:  # noqa: BLE001 - Redis down: keep trying
                log.warning("queued worker heartbeat failed: %s", error)
            self.stopped.wait(HEARTBEAT_SECONDS)


_heartbeat: _Heartbeat | None = None


def _is_queued_worker() -> bool:
    config = getattr(celery_app, "engine_config", None)
    return config is not None and Mode.QUEUED_WORKER in config.modes


@worker_process_init.connect
def _start_heartbeat(**_: object) -> None:
    global _heartbeat
    if _is_queued_worker():
        _heartbeat = _Heartbeat()
        _heartbeat.start()


@worker_process_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    if _heartbeat is not None:
        _heartbeat.stopped.set()
        try:
            Backlog(services().redis).leave(worker_id())
        except Exception:  # noqa: BLE001
            pass
