"""The job API every queued task kind uses: enqueue, read, list, stop."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from typing import Any

from engine.errors import NotFound, TooManyRequests, ValidationFailed
from engine.ids import new_id
from engine.jobs import dispatch as dispatcher
from engine.jobs.model import FLOW_CLASS, Job, JobState, lane_of, limit_class
from engine.limits.service import limits_for
from engine.services import Services
from engine.store import jobs as store
from engine.store.job_backlog import Backlog

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
MAX_LIST_LIMIT = 1000


def _now() -> datetime:
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def enqueue_job(
    services: Services,
    *,
    kind: str,
    workspace_id: str,
    customer_id: str,
    connection_id: str | None,
    payload: dict,
    launched_by: str,
    job_id: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Store a queued job (durable first), then dispatch what may start now.

    429 beyond flowRunsQueueSizePerConnection (connection lanes) or queuedTasksQueueSize (all
    queued jobs); these safety limits hold even without ENABLE_LIMITS. Nothing is half-created:
    a refused job leaves no document and no counted place.
    """
    limits = limits_for(services, workspace_id, customer_id)
    lane = lane_of(kind, customer_id, connection_id)
    taken: list[str] = []
    if connection_id and limit_class(kind) == FLOW_CLASS:
        size = limits["flowRunsQueueSizePerConnection"]
        if not store.take_queue_place(services.db, lane, size):
            raise TooManyRequests(
                f"connection {connection_id} already has {size} queued runs (flowRunsQueueSizePerConnection)",
                retry_after_seconds=5.0,
                field="flowRunsQueueSizePerConnection",
            )
    else:
        store.take_queue_place(services.db, lane, 2**62)
    taken.append(lane)
    total = limits["queuedTasksQueueSize"]
    if not store.take_queue_place(services.db, store.workspace_queue(workspace_id), total):
        store.release_queue_place(services.db, lane)
        raise TooManyRequests(
            f"workspace {workspace_id} already has {total} queued tasks (queuedTasksQueueSize)",
            retry_after_seconds=5.0,
            field="queuedTasksQueueSize",
        )
    taken.append(store.workspace_queue(workspace_id))
    job = Job(
        id=job_id or new_id("job"),
        kind=kind,
        state=JobState.QUEUED,
        workspace_id=workspace_id,
        customer_id=customer_id,
        connection_id=connection_id,
        payload=payload,
        launched_by=launched_by,
        attempts=0,
        max_attempts=max_attempts,
        created_at=_now(),
        lane=lane,
    )
    try:
        store.insert(services.db, job.to_document())
    except Exception:
        for queue in taken:
            store.release_queue_place(services.db, queue)
        raise
    # Redis is only an index: if this fails, the reconciler's rebuild or resend picks the job up.
    try:
        Backlog(services.redis).push(lane, job.id)
        dispatcher.dispatch(services)
    except Exception as error:  # noqa: BLE001 - the job is stored; delivery is retried by the reconciler
        log.warning("job %s stored but not dispatched yet: %s", job.id, error)
    return job


def get_job(services: Services, job_id: str) -> Job:
    """The job; 404 if there is none."""
    document = store.find(services.db, job_id)
    if document is None:
        raise NotFound(f"no job {job_id}")
    return Job.from_document(document)


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat() if job.created_at else "", job.id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), str(job_id)
    except Exception:  # noqa: BLE001 - any malformed cursor is the caller's mistake
        raise ValidationFailed("cursor is not one this API returned", field="cursor") from None


def list_jobs(
    services: Services,
    *,
    workspace_id: str,
    customer_id: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    payload_filter: dict[str, Any] | None = None,
) -> tuple[list[Job], str | None]:
    """Jobs of a workspace, newest first, filtered; returns (page, cursor of the next page or None)."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValidationFailed(f"limit must be 1..{MAX_LIST_LIMIT}", field="limit")
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if customer_id:
        query["customerId"] = customer_id
    if kind:
        query["kind"] = kind
    if state:
        try:
            query["state"] = JobState(state).value
        except ValueError:
            raise ValidationFailed(
                f"state must be one of {', '.join(s.value for s in JobState)}", field="state"
            ) from None
    created: dict[str, Any] = {}
    if created_from:
        created["$gte"] = created_from
    if created_to:
        created["$lt"] = created_to
    if created:
        query["createdAt"] = created
    for name, value in (payload_filter or {}).items():
        query[f"payload.{name}"] = value
    documents = store.page(
        services.db, query, before=_decode_cursor(cursor) if cursor else None, limit=limit + 1
    )
    jobs = [Job.from_document(d) for d in documents[:limit]]
    return jobs, (_encode_cursor(jobs[-1]) if len(documents) > limit else None)


def request_stop(services: Services, job_id: str) -> Job:
    """Stop a job: a queued one at once; a running one within seconds (cooperative, then forced)."""
    document = store.find(services.db, job_id)
    if document is None:
        raise NotFound(f"no job {job_id}")
    now = _now()
    if document["state"] == JobState.QUEUED.value:
        if store.update_if(
            services.db,
            job_id,
            {"state": JobState.QUEUED.value},
            {"$set": {"state": JobState.STOPPED.value, "stopRequested": True, "finishedAt": now}},
        ):
            # Re-read: a dispatcher may have given it slots since we looked.
            dispatcher.release(services, store.find(services.db, job_id) or document)
            store.release_queue_place(services.db, document.get("lane", ""))
            store.release_queue_place(services.db, store.workspace_queue(document["workspaceId"]))
            dispatcher.dispatch(services)
            return get_job(services, job_id)
        document = store.find(services.db, job_id) or document
    if document["state"] == JobState.RUNNING.value:
        store.update_if(
            services.db, job_id, {"state": JobState.RUNNING.value}, {"$set": {"stopRequested": True}}
        )
    return get_job(services, job_id)
