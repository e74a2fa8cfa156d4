"""Test-only job kinds, imported by workers through ENGINE_EXTRA_JOB_MODULES.

Each records its start and end in the `test_job_events` collection, so tests can check overlap
and exactly-once completion from MongoDB (the truth), not from logs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from engine.jobs.model import FLOW_CLASS, set_limit_class
from engine.jobs.registry import job_handler

EVENTS = "test_job_events"


def _record(ctx, job, what: str) -> None:
    ctx.services.db[EVENTS].insert_one(
        {
            "jobId": job.id,
            "what": what,
            "at": datetime.now(UTC),
            "mono": time.time(),
            "connectionId": job.connection_id,
            "customerId": job.customer_id,
            "workspaceId": job.workspace_id,
            "attempt": job.attempts,
        }
    )


set_limit_class("test-flow-sleep", FLOW_CLASS)
"""A sleep that counts as a flow run for the limits (parallelFlowRunsPerConnection, parallelFlowRuns)."""


@job_handler("test-flow-sleep")
@job_handler("test-sleep")
def sleep_job(job, ctx):
    """Sleeps payload.seconds in small steps, honouring stop requests."""
    _record(ctx, job, "start")
    deadline = time.monotonic() + float(job.payload.get("seconds", 0))
    while time.monotonic() < deadline:
        if ctx.should_stop() and not job.payload.get("ignoreStop"):
            _record(ctx, job, "stopped")
            return None
        time.sleep(0.02)
    _record(ctx, job, "end")
    return {"slept": job.payload.get("seconds", 0)}


@job_handler("test-allocate")
def allocate_job(job, ctx):
    """Allocates payload.mb megabytes, 10 MB at a time, then holds them."""
    _record(ctx, job, "start")
    chunks = []
    for _ in range(int(job.payload.get("mb", 0)) // 10):
        chunks.append(bytearray(10 * 1024 * 1024))
        time.sleep(0.01)
    time.sleep(float(job.payload.get("hold", 5)))
    _record(ctx, job, "end")
    return {"allocated": len(chunks) * 10}


@job_handler("test-noop")
def noop_job(job, ctx):
    return None


@job_handler("test-fail")
def fail_job(job, ctx):
    raise ValueError("boom")
