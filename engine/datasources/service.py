"""Data sources: create, read, list, delete, sync now; the orchestrator's due syncs and event pulls.

A sync runs as a queued job (kind `data-source-sync`, or `event-pull` for an event pull), under
the workspace's `parallelEventPulls`. One sync at a time per data source: enqueueing first takes
the data source's claim (`activeJobId`, a conditional update); the job's handler releases it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from engine.auth.principal import Principal, Role
from engine.datasources.model import (
    DEFAULT_FULL_SYNC_INTERVAL_SECONDS,
    DEFAULT_PAGE_SIZE_RECORDS,
    DEFAULT_PULL_UPDATES_INTERVAL_SECONDS,
    MAX_FULL_SYNC_INTERVAL_SECONDS,
    MAX_PAGE_SIZE_RECORDS,
    MAX_PULL_UPDATES_INTERVAL_SECONDS,
    MIN_FULL_SYNC_INTERVAL_SECONDS,
    MIN_PULL_UPDATES_INTERVAL_SECONDS,
    DataSource,
    DataSourceKind,
    DataSourceState,
    SyncMode,
)
from engine.domain.common import Page, iso, now, page_of
from engine.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from engine.ids import new_id
from engine.services import Services
from engine.store import data_records as records_store
from engine.store import data_sources as sources_store

log = logging.getLogger(__name__)

DUE_BATCH_SOURCES = 200
"""How many due data sources one orchestrator tick looks at per kind of due time."""
STALE_CLAIM_SECONDS = 120.0
"""A claim whose job cannot be found after this long is released (the enqueue died half-way)."""


def _int_field(data: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{name} must be a whole number of seconds", field=name)
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be within {low}..{high}", field=name)
    return value


def _connection_for(services: Services, principal: Principal, connection_id: Any):
    from engine.domain import connections

    if not isinstance(connection_id, str) or not connection_id:
        raise ValidationFailed("connectionId is required", field="connectionId")
    customer = principal.customer_id if principal.role is Role.CUSTOMER else None
    try:
        return connections.get_connection(services, principal.workspace, connection_id, customer)
    except NotFound:
        raise ValidationFailed(f"no connection {connection_id!r}", field="connectionId") from None


def create_data_source(services: Services, principal: Principal, data: dict[str, Any]) -> DataSource:
    """Validate and store a data source (400 naming the field); the first sync is a full one, due now."""
    from engine.domain import connections

    if not isinstance(data, dict):
        raise ValidationFailed("the body must be an object")
    kind_value = data.get("kind", DataSourceKind.SYNC.value)
    if kind_value not in {k.value for k in DataSourceKind}:
        raise ValidationFailed("kind must be sync or event-pull", field="kind")
    kind = DataSourceKind(kind_value)
    connection = _connection_for(services, principal, data.get("connectionId"))
    collection = data.get("collection")
    if not isinstance(collection, str) or not collection:
        raise ValidationFailed("collection is required", field="collection")
    pull = _int_field(
        data,
        "pullUpdatesIntervalSeconds",
        DEFAULT_PULL_UPDATES_INTERVAL_SECONDS,
        MIN_PULL_UPDATES_INTERVAL_SECONDS,
        MAX_PULL_UPDATES_INTERVAL_SECONDS,
    )
    full = _int_field(
        data,
        "fullSyncIntervalSeconds",
        DEFAULT_FULL_SYNC_INTERVAL_SECONDS if kind is DataSourceKind.SYNC else None,
        MIN_FULL_SYNC_INTERVAL_SECONDS,
        MAX_FULL_SYNC_INTERVAL_SECONDS,
    )
    if kind is DataSourceKind.EVENT_PULL and full is not None:
        raise ValidationFailed("an event pull has no full sync", field="fullSyncIntervalSeconds")
    if full is not None and pull is not None and full < pull:
        raise ValidationFailed(
            "fullSyncIntervalSeconds must not be shorter than pullUpdatesIntervalSeconds",
            field="fullSyncIntervalSeconds",
        )
    page_size = _int_field(data, "pageSize", DEFAULT_PAGE_SIZE_RECORDS, 1, MAX_PAGE_SIZE_RECORDS)
    spec = connections.bind(services, connection).spec
    if collection not in spec.data:
        known = ", ".join(sorted(spec.data)) or "none"
        raise ValidationFailed(
            f"connector {spec.key} has no data collection {collection!r} (it has: {known})",
            field="collection",
        )
    if sources_store.find_for_connection(services.db, connection.id, collection, kind.value) is not None:
        raise Conflict(
            f"connection {connection.id} already has a {kind.value} data source for {collection!r}",
            field="collection",
        )
    return _insert(
        services,
        connection.workspace_id,
        connection.customer_id,
        connection.id,
        collection,
        kind,
        int(pull or DEFAULT_PULL_UPDATES_INTERVAL_SECONDS),
        full,
        int(page_size or DEFAULT_PAGE_SIZE_RECORDS),
    )


def _insert(
    services: Services,
    workspace_id: str,
    customer_id: str,
    connection_id: str,
    collection: str,
    kind: DataSourceKind,
    pull: int,
    full: int | None,
    page_size: int,
) -> DataSource:
    timestamp = now()
    event_pull = kind is DataSourceKind.EVENT_PULL
    source = DataSource(
        new_id("dsrc"),
        workspace_id,
        customer_id,
        connection_id,
        collection,
        kind,
        pull,
        full,
        page_size,
        DataSourceState.IDLE,
        timestamp,
        timestamp,
        # A data source starts with a full sync; an event pull with an incremental from now on.
        next_incremental_at=timestamp if event_pull else timestamp + timedelta(seconds=pull),
        next_full_at=None if event_pull else timestamp,
        baseline_at=iso(timestamp) if event_pull else None,
    )
    sources_store.insert(services.db, source.to_document())
    return source


def ensure_event_pull(
    services: Services,
    *,
    workspace_id: str,
    customer_id: str,
    connection_id: str,
    collection: str,
    interval_seconds: int = DEFAULT_PULL_UPDATES_INTERVAL_SECONDS,
) -> DataSource:
    """The event pull of a connection's collection (created if missing): polls for changes from now on.

    For the flows: a data-record trigger on a collection whose events are `pull-latest-records`."""
    existing = sources_store.find_for_connection(
        services.db, connection_id, collection, DataSourceKind.EVENT_PULL.value
    )
    if existing is not None:
        return DataSource.from_document(existing)
    interval = max(
        MIN_PULL_UPDATES_INTERVAL_SECONDS, min(interval_seconds, MAX_PULL_UPDATES_INTERVAL_SECONDS)
    )
    return _insert(
        services,
        workspace_id,
        customer_id,
        connection_id,
        collection,
        DataSourceKind.EVENT_PULL,
        interval,
        None,
        DEFAULT_PAGE_SIZE_RECORDS,
    )


def remove_event_pull(services: Services, connection_id: str, collection: str) -> bool:
    existing = sources_store.find_for_connection(
        services.db, connection_id, collection, DataSourceKind.EVENT_PULL.value
    )
    if existing is None:
        return False
    _delete(services, DataSource.from_document(existing))
    return True


def get_data_source(services: Services, principal: Principal, data_source_id: str) -> DataSource:
    """A data source the principal may see (its workspace's; a customer's own), else 404."""
    document = sources_store.find_by_id(services.db, data_source_id)
    if (
        document is None
        or document["workspaceId"] != principal.workspace_id
        or (principal.role is Role.CUSTOMER and document["customerId"] != principal.customer_id)
    ):
        raise NotFound(f"no data source {data_source_id!r}")
    return DataSource.from_document(document)


def list_data_sources(services: Services, principal: Principal, *, cursor: str | None, limit: int) -> Page:
    customer = principal.customer_id if principal.role is Role.CUSTOMER else None
    documents = sources_store.list_page(
        services.db, principal.workspace, customer_id=customer, after_id=cursor, limit=limit + 1
    )
    return page_of(documents, limit, DataSource.from_document)


def delete_data_source(services: Services, principal: Principal, data_source_id: str) -> None:
    _delete(services, get_data_source(services, principal, data_source_id))


def delete_for_connection(services: Services, connection_id: str) -> int:
    """Delete every data source and event pull of a connection (call it when the connection goes)."""
    documents = sources_store.of_connection(services.db, connection_id)
    for document in documents:
        _delete(services, DataSource.from_document(document))
    return len(documents)


def _delete(services: Services, source: DataSource) -> None:
    if source.active_job_id:
        try:
            from engine.jobs.service import request_stop

            request_stop(services, source.active_job_id)
        except Exception:  # noqa: BLE001 - the job finds its data source gone and ends anyway
            log.warning("could not ask sync job %s to stop", source.active_job_id)
    sources_store.delete(services.db, source.id)
    records_store.delete_for_source(services.db, source.id)


def _enqueue(
    services: Services,
    source: DataSource,
    mode: SyncMode,
    launched_by: str,
    schedule: dict[str, Any],
    only_if: dict[str, Any] | None = None,
) -> str | None:
    """Claim the data source and queue its sync job; None when another sync holds it."""
    job_id = new_id("job")
    fields = {
        "state": DataSourceState.QUEUED.value,
        "queuedMode": mode.value,
        "claimedAt": now(),
        "updatedAt": now(),
        **schedule,
    }
    if not sources_store.claim(services.db, source.id, job_id, fields, only_if=only_if):
        return None
    try:
        from engine.jobs.service import enqueue_job

        enqueue_job(
            services,
            kind=source.job_kind,
            workspace_id=source.workspace_id,
            customer_id=source.customer_id,
            connection_id=source.connection_id,
            payload={"dataSourceId": source.id, "mode": mode.value},
            launched_by=launched_by,
            job_id=job_id,
        )
    except BaseException as error:
        sources_store.release(services.db, source.id, job_id, {"state": DataSourceState.IDLE.value})
        if isinstance(error, ImportError):
            raise ServiceUnavailable("the job system is not available") from error
        raise
    return job_id


def request_sync(services: Services, principal: Principal, data_source_id: str, *, full: bool) -> str:
    """Queue a sync now (409 while one is queued or running); returns the job id."""
    source = get_data_source(services, principal, data_source_id)
    mode = SyncMode.FULL if full and source.kind is DataSourceKind.SYNC else SyncMode.INCREMENTAL
    timestamp = now()
    schedule: dict[str, Any] = {
        "nextIncrementalAt": timestamp + timedelta(seconds=source.pull_updates_interval_seconds)
    }
    if mode is SyncMode.FULL and source.full_sync_interval_seconds:
        schedule["nextFullAt"] = timestamp + timedelta(seconds=source.full_sync_interval_seconds)
    job_id = _enqueue(services, source, mode, principal.subject or principal.role.value, schedule)
    if job_id is None:
        current = sources_store.find_by_id(services.db, source.id) or {}
        raise Conflict(
            f"a sync of this data source is already queued or running (job {current.get('activeJobId')})",
            activeJobId=current.get("activeJobId"),
        )
    return job_id


def enqueue_due(services: Services, current: datetime) -> list[str]:
    """Queue the syncs due at `current` (full first); idempotent: each due time is claimed once."""
    queued: list[str] = []
    seen: set[str] = set()
    for field, mode in (("nextFullAt", SyncMode.FULL), ("nextIncrementalAt", SyncMode.INCREMENTAL)):
        for document in sources_store.due(services.db, field, current, limit=DUE_BATCH_SOURCES):
            if document["_id"] in seen or document.get("activeJobId"):
                continue  # one sync at a time: it stays due until the running one ends
            seen.add(document["_id"])
            source = DataSource.from_document(document)
            schedule: dict[str, Any] = {
                "nextIncrementalAt": current + timedelta(seconds=source.pull_updates_interval_seconds)
            }
            if mode is SyncMode.FULL and source.full_sync_interval_seconds:
                schedule["nextFullAt"] = current + timedelta(seconds=source.full_sync_interval_seconds)
            try:
                job_id = _enqueue(
                    services, source, mode, "orchestrator", schedule, only_if={field: document[field]}
                )
            except Exception:  # noqa: BLE001 - e.g. queue full: stays due, tried next tick
                log.exception("could not queue the %s sync of data source %s", mode.value, source.id)
                continue
            if job_id:
                queued.append(job_id)
    return queued


def release_stale_claims(services: Services, current: datetime) -> list[str]:
    """Release claims whose job ended without releasing them (failed for good, lost); returns the ids."""
    from engine.jobs.service import get_job

    released: list[str] = []
    for state in (DataSourceState.QUEUED.value, DataSourceState.SYNCING.value):
        for document in sources_store.in_state(services.db, state, limit=DUE_BATCH_SOURCES):
            job_id = document.get("activeJobId")
            if not job_id:
                continue
            try:
                job = get_job(services, job_id)
            except Exception:  # noqa: BLE001 - NotFound or a missing job
                job = None
            if job is None:
                claimed = document.get("claimedAt") or document.get("updatedAt")
                if claimed and (current - claimed).total_seconds() < STALE_CLAIM_SECONDS:
                    continue
                message = "the sync job was lost"
            elif job.finished:
                message = f"the sync job ended {job.state.value}" + (
                    f": {job.error.get('message')}" if job.error else ""
                )
            else:
                continue
            if sources_store.release(
                services.db,
                document["_id"],
                job_id,
                {
                    "state": DataSourceState.FAILED.value
                    if job is None or job.state.value == "failed"
                    else DataSourceState.IDLE.value,
                    "lastError": message,
                    "updatedAt": now(),
                },
            ):
                released.append(document["_id"])
    return released
