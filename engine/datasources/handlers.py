"""The job handlers of data-source syncs and event pulls (kinds `data-source-sync`, `event-pull`).

Both run `engine.datasources.sync.run_sync` for the job's `payload.dataSourceId`; an event pull
is an incremental sync of an event-pull data source (no full sync, events from its creation on).
"""

from __future__ import annotations

from typing import Any

from engine.datasources.model import EVENT_PULL_JOB_KIND, SYNC_JOB_KIND
from engine.datasources.sync import run_sync
from engine.jobs.model import Job
from engine.jobs.registry import JobContext, job_handler


@job_handler(SYNC_JOB_KIND)
def run_data_source_sync(job: Job, ctx: JobContext) -> dict[str, Any] | None:
    """Sync (or resume syncing) one data source."""
    return run_sync(
        ctx.services, job.payload["dataSourceId"], job_id=job.id, mode=job.payload.get("mode"), ctx=ctx
    )


@job_handler(EVENT_PULL_JOB_KIND)
def run_event_pull(job: Job, ctx: JobContext) -> dict[str, Any] | None:
    """Pull the latest records of an event-pull data source and fire their events."""
    return run_sync(ctx.services, job.payload["dataSourceId"], job_id=job.id, mode="incremental", ctx=ctx)
