"""External events: webhooks from external apps, app events from the workspace's own app, and
data-record changes from syncs. Each is stored first (the API answers 202 only after), then a job
of kind "external-event" matches it to subscribed flow instances and queues their runs.

Matching:
- webhook on connection C with type T: C's enabled instances whose data-record trigger lists T in
  `webhookEvents`; the run input is {eventType, change, record: body.data, event: body}.
- app event of type T in workspace W: W's enabled instances with an app-event trigger on T (a
  customer token reaches only that customer's instances); the input is the event body.
- data-record change on connection C: C's enabled instances whose data-record trigger has the same
  change and data source; the input is {change, dataSourceId, record}.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

from engine.auth.principal import Principal, Role
from engine.domain.common import iso, now
from engine.errors import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from engine.flows.runs import enqueue_flow_run
from engine.flows.service import FlowInstance
from engine.ids import new_id
from engine.jobs import service as jobs
from engine.jobs.model import Job
from engine.jobs.registry import job_handler
from engine.services import Services

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers
from engine.store import connections as connections_store
from engine.store import data_sources as data_sources_store
from engine.store import events as events_store
from engine.store import flow_instances as instances_store

log = logging.getLogger(__name__)

EVENT_KIND = "external-event"
MAX_EVENT_BYTES = 1024 * 1024
PENDING_EVENT_SECONDS = 30.0
"""An event stored this long without a processing job is queued again by the recovery sweep."""
"""Largest event body accepted (413 above, nothing stored or queued)."""
EVENT_TYPE_HEADERS = ("X-Event-Type", "X-Demo-Event", "X-GitHub-Event")
"""Where a webhook's event type is read when its body has no `type` field."""
CHANGES = ("created", "updated", "deleted")


def _parse_body(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"the event body is {len(raw)} bytes, above {MAX_EVENT_BYTES}")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the event body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("the event body must be a JSON object")
    return body


def _store_and_queue(services: Services, document: dict[str, Any]) -> dict[str, Any]:
    document = {"_id": new_id("evt"), "receivedAt": now(), "state": "received", **document}
    events_store.insert(services.db, document)
    try:
        job = _enqueue_processing(services, document)
    except Exception:
        events_store.delete(services.db, document["_id"])  # refused (e.g. 429): nothing kept, nothing queued
        raise
    events_store.update(services.db, document["_id"], {"jobId": job.id})
    return document


def _enqueue_processing(services: Services, document: Mapping[str, Any]) -> Job:
    # A workspace-level app event has no customer: its processing waits in a lane of the workspace.
    customer = document.get("customerId") or f"workspace:{document['workspaceId']}"
    # The job id derives from the event id, so a recovery sweep re-enqueueing it cannot double it.
    return jobs.enqueue_job(
        services,
        kind=EVENT_KIND,
        workspace_id=document["workspaceId"],
        customer_id=customer,
        connection_id=document.get("connectionId"),
        payload={"eventId": document["_id"]},
        launched_by="external-event",
        job_id=f"job_{document['_id']}",
    )


def requeue_pending_events(services: Services, *, older_than_seconds: float = PENDING_EVENT_SECONDS) -> int:
    """For the orchestrator's recovery: queue events stored but never queued (a crash in between)."""
    cutoff = now() - timedelta(seconds=older_than_seconds)
    count = 0
    for document in events_store.pending(services.db):
        if document.get("jobId") or document["receivedAt"] > cutoff:
            continue
        try:
            job = _enqueue_processing(services, document)
        except DuplicateKeyError:
            job = jobs.get_job(services, f"job_{document['_id']}")
        events_store.update(services.db, document["_id"], {"jobId": job.id})
        count += 1
    return count


def receive_webhook(
    services: Services,
    integration_key: str,
    connection_id: str,
    raw: bytes,
    headers: Mapping[str, str] | Headers,
) -> dict[str, Any]:
    """Store a webhook delivery for the connection and queue its processing.

    headers: the request's (werkzeug's Headers match names case-insensitively, which the
    event-type headers need: a sender's `X-GitHub-Event` arrives as `X-Github-Event`).
    """
    body = _parse_body(raw)
    connection = connections_store.find_by_id(services.db, connection_id)
    if connection is None or connection.get("integrationKey") != integration_key:
        raise NotFound(f"no connection {connection_id} on integration {integration_key}")
    event_type = body.get("type") if isinstance(body.get("type"), str) else None
    event_type = event_type or next((headers[h] for h in EVENT_TYPE_HEADERS if headers.get(h)), None)
    if not event_type:
        raise ValidationFailed(
            "the event type is missing: send a `type` field or an X-Event-Type header", field="type"
        )
    return _store_and_queue(
        services,
        {
            "source": "webhook",
            "workspaceId": connection["workspaceId"],
            "customerId": connection.get("customerId"),
            "connectionId": connection_id,
            "integrationKey": integration_key,
            "eventType": event_type,
            "payload": body,
        },
    )


def receive_app_event(
    services: Services, principal: Principal, event_type: str, raw: bytes
) -> dict[str, Any]:
    """Store an event of the workspace's own app and queue its processing."""
    if not event_type or len(event_type) > 200:
        raise ValidationFailed("the event type must be 1-200 characters", field="eventType")
    body = _parse_body(raw)
    customer_id = principal.customer_id if principal.role is Role.CUSTOMER else None
    return _store_and_queue(
        services,
        {
            "source": "app-event",
            "workspaceId": principal.workspace_id,
            "customerId": customer_id,
            "eventType": event_type,
            "payload": body,
        },
    )


def emit_data_record_event(
    services: Services,
    *,
    connection_id: str,
    data_source_id: str,
    change: str,
    record: Mapping[str, Any],
    data_source_key: str | None = None,
) -> dict[str, Any] | None:
    """For syncs (issue 7): a record of a data source was created/updated/deleted; start the
    data-record-trigger flows of the connection. `dataSource` in a trigger may name the data
    source's id or its key (its collection). Returns the stored event, or None when no enabled
    flow instance of the connection listens to this change (a full sync then queues nothing)."""
    if change not in CHANGES:
        raise ValueError(f"change must be one of {CHANGES}, not {change!r}")
    if not any(
        d.get("enabled") and d.get("dataChange") == change
        for d in instances_store.of_connection(services.db, connection_id)
    ):
        return None
    connection = connections_store.find_by_id(services.db, connection_id)
    if connection is None:
        raise NotFound(f"no connection {connection_id}")
    if data_source_key is None:
        source = data_sources_store.find_by_id(services.db, data_source_id) or {}
        data_source_key = source.get("collection") or source.get("key")
    return _store_and_queue(
        services,
        {
            "source": "data-source",
            "workspaceId": connection["workspaceId"],
            "customerId": connection.get("customerId"),
            "connectionId": connection_id,
            "dataSourceId": data_source_id,
            "dataSourceKey": data_source_key,
            "change": change,
            "eventType": f"data-record-{change}",
            "payload": {"record": dict(record)},
        },
    )


def match(services: Services, event: Mapping[str, Any]) -> list[tuple[FlowInstance, Any, str]]:
    """(instance, run input, launchedBy) for every enabled instance the event starts."""
    source = event["source"]
    matched: list[tuple[FlowInstance, Any, str]] = []
    if source == "app-event":
        for d in instances_store.with_event_type(services.db, event["workspaceId"], event["eventType"]):
            if (
                d.get("enabled")
                and d.get("triggerType") == "app-event-trigger"
                and (event.get("customerId") is None or d.get("customerId") == event["customerId"])
            ):
                matched.append((FlowInstance.from_document(d), event["payload"], "app-event"))
        return matched
    for d in instances_store.of_connection(services.db, event["connectionId"]):
        if not d.get("enabled") or not d.get("dataChange"):
            continue
        if source == "webhook" and event["eventType"] in (d.get("webhookEvents") or []):
            payload = event["payload"]
            record = payload.get("data") if isinstance(payload.get("data"), dict) else payload
            matched.append(
                (
                    FlowInstance.from_document(d),
                    {
                        "eventType": event["eventType"],
                        "change": d["dataChange"],
                        "record": record,
                        "event": payload,
                    },
                    "external-event",
                )
            )
        elif (
            source == "data-source"
            and d["dataChange"] == event["change"]
            and d.get("dataSource") in (event.get("dataSourceId"), event.get("dataSourceKey"))
        ):
            matched.append(
                (
                    FlowInstance.from_document(d),
                    {
                        "change": event["change"],
                        "dataSourceId": event["dataSourceId"],
                        "record": event["payload"]["record"],
                    },
                    "data-source",
                )
            )
    return matched


@job_handler(EVENT_KIND)
def process_event_job(job: Job, ctx: Any) -> dict[str, Any]:
    """Queue the runs an event starts. Idempotent: a retried attempt skips runs already queued."""
    services: Services = ctx.services
    event = events_store.find_by_id(services.db, job.payload["eventId"])
    if event is None:
        return {"runs": [], "note": "event not found"}
    if event.get("state") == "processed":
        return {"runs": event.get("runIds", [])}
    run_ids = list(event.get("runIds") or [])
    done_instances = set(event.get("instanceIds") or [])
    for instance, run_input, launched_by in match(services, event):
        if instance.id in done_instances:
            continue
        run = enqueue_flow_run(services, instance, run_input, launched_by=launched_by, event_id=event["_id"])
        run_ids.append(run.id)
        done_instances.add(instance.id)
        events_store.update(
            services.db, event["_id"], {"runIds": run_ids, "instanceIds": sorted(done_instances)}
        )
    events_store.update(
        services.db, event["_id"], {"state": "processed", "processedAt": now(), "runIds": run_ids}
    )
    ctx.log(f"event {event['_id']} ({event['eventType']}) queued {len(run_ids)} runs")
    return {"runs": run_ids}


def to_public(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event as the API answers it (202)."""
    return {
        "id": event["_id"],
        "source": event["source"],
        "eventType": event["eventType"],
        "state": event["state"],
        "receivedAt": iso(event["receivedAt"]),
    }
