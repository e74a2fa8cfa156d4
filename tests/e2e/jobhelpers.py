"""Helpers of the job-system e2e tests: real queued workers running the test job kinds."""

from __future__ import annotations

import signal
import time

import psutil

import tests.integration.jobs.handlers  # noqa: F401 - the test kinds and their limit classes, here too
from engine.jobs.model import JobState
from engine.jobs.reconcile import reconcile
from engine.jobs.service import get_job

WORKER_ENV = {
    "IS_API": "0",
    "IS_QUEUED_TASKS_WORKER": "1",
    "ENGINE_EXTRA_JOB_MODULES": "tests.integration.jobs.handlers",
}


def start_worker(start_engine, engine_env, **extra: str):
    worker = start_engine({**engine_env, **WORKER_ENV, **extra})
    worker.wait_healthy()
    return worker


def kill_tree(proc) -> None:
    """SIGKILL the worker's main process and its pool children at once (a container OOM-kill)."""
    parent = psutil.Process(proc.process.pid)
    for process in [*parent.children(recursive=True), parent]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.process.wait(10)


def wait_for(
    predicate,
    timeout_seconds: float,
    *,
    services=None,
    reconcile_every: float | None = None,
    what: str = "condition",
):
    """Poll predicate (running the reconciler as the orchestrator would, if asked) until true."""
    deadline = time.monotonic() + timeout_seconds
    last_reconcile = 0.0
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if reconcile_every and time.monotonic() - last_reconcile > reconcile_every:
            reconcile(services)
            last_reconcile = time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_finished(services, job_id: str, timeout_seconds: float = 30.0, **kwargs):
    return wait_for(
        lambda: (
            (j := get_job(services, job_id)).state in (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED)
            and j
        ),
        timeout_seconds,
        services=services,
        what=f"job {job_id} to finish",
        **kwargs,
    )


def events(services, job_id: str | None = None, what: str | None = None) -> list[dict]:
    query = {}
    if job_id:
        query["jobId"] = job_id
    if what:
        query["what"] = what
    return list(services.db["test_job_events"].find(query))
