"""Data-record events (created / updated / deleted): recorded, then handed to the flows.

Each event is first recorded in `data_record_events` with a deterministic id (data source,
external id, change, record hash), so a page replayed after a crash records it once; then it is
handed to the flows' `emit_data_record_event` (helper module of engine/flows, imported lazily),
then marked `emitted`. An event whose hand-over failed stays `pending` and is handed over again
by the next sync of its data source (at least once).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from engine.domain.common import now
from engine.services import Services
from engine.store import data_records as store

log = logging.getLogger(__name__)

CHANGES = ("created", "updated", "deleted")
EMITTER_MODULES = (
    "engine.flows",
    "engine.flows.triggers",
    "engine.flows.events",
    "engine.flows.data_records",
    "engine.flows.service",
)
"""Where the flows package may define `emit_data_record_event` (first found wins)."""
PENDING_BATCH_RECORDS = 500

_emitter: list[Callable[..., Any] | None] = []


def record_hash(record: Any) -> str:
    """A stable digest of a record's content (keys sorted), to tell updated from unchanged."""
    return hashlib.sha256(
        json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
    ).hexdigest()


def event_id(data_source_id: str, external_id: str, change: str, digest: str) -> str:
    text = f"{data_source_id}\x00{external_id}\x00{change}\x00{digest}"
    return "dre_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def flows_emitter() -> Callable[..., Any] | None:
    """The flows' `emit_data_record_event(services, *, connection_id, data_source_id, change, record)`, if any."""
    if not _emitter:
        found = None
        for name in EMITTER_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            found = getattr(module, "emit_data_record_event", None)
            if found is not None:
                break
        _emitter.append(found)
    return _emitter[0]


def build_event(
    source: dict[str, Any],
    external_id: str,
    change: str,
    record: Any,
    digest: str,
    job_id: str | None,
    wanted: set[str] | None = None,
) -> dict[str, Any]:
    """The audit document of one event (`source` is the data source document).

    `wanted`: the changes some flow listens to (see `subscribed_changes`; None: unknown, all).
    An event no flow listens to is recorded as `unsubscribed` and never handed over."""
    pending = wanted is None or change in wanted
    return {
        "_id": event_id(source["_id"], external_id, change, digest),
        "dataSourceId": source["_id"],
        "workspaceId": source["workspaceId"],
        "customerId": source["customerId"],
        "connectionId": source["connectionId"],
        "collection": source["collection"],
        "externalId": external_id,
        "change": change,
        "record": record,
        "hash": digest,
        "jobId": job_id,
        "state": "pending" if pending else "unsubscribed",
        "createdAt": now(),
    }


def record_events(services: Services, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store events; those already recorded (a replayed page) are dropped. Returns the new ones."""
    return store.insert_events(services.db, events)


def subscribed_changes(services: Services, source: dict[str, Any]) -> set[str] | None:
    """The changes (created/updated/deleted) some enabled flow instance of the event's connection
    listens to on its data source; None when it cannot be told (then every event is handed over).

    Mirrors the flows' matching (engine/flows/events.py `match`) so that a sync of thousands of
    records with no subscribed flow does not queue thousands of no-op event jobs."""
    if flows_emitter() is None:
        return set()  # no flows to hand events to: record them only
    try:
        from engine.store import flow_instances
    except ImportError:
        return None
    names = {source["_id"], source.get("collection")}
    return {
        d["dataChange"]
        for d in flow_instances.of_connection(services.db, source["connectionId"])
        if d.get("enabled") and d.get("dataChange") and d.get("dataSource") in names
    }


def hand_over(services: Services, events: list[dict[str, Any]]) -> int:
    """Give recorded `pending` events to the flows, marking each emitted; returns how many were."""
    pending = [event for event in events if event.get("state") == "pending"]
    if not pending:
        return 0
    emit = flows_emitter()
    if emit is None:
        return 0
    done = 0
    for event in pending:
        try:
            emit(
                services,
                connection_id=event["connectionId"],
                data_source_id=event["dataSourceId"],
                change=event["change"],
                record=event["record"],
            )
        except Exception:  # noqa: BLE001 - left pending, handed over again by the next sync
            log.exception("data-record event %s could not be handed to the flows", event["_id"])
            continue
        # One fast update by _id per handed event (events no flow wants never get here).
        store.mark_events(services.db, [event["_id"]], {"state": "emitted", "emittedAt": now()})
        done += 1
    return done


def hand_over_pending(services: Services, data_source_id: str) -> int:
    """Hand over events left pending by an interrupted sync."""
    total = 0
    while True:
        batch = store.pending_events(services.db, data_source_id, limit=PENDING_BATCH_RECORDS)
        if not batch:
            return total
        handed = hand_over(services, batch)
        total += handed
        if handed < len(batch):
            return total  # the flows refuse some: leave them for the next sync
