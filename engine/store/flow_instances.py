"""The `flow_instances` collection: a flow enabled for one connection.

Trigger fields are copied from the flow onto each instance (`triggerType`, `eventType`,
`dataSource`, `webhookEvents`, `schedule`, `nextRunAt`) so event matching and the orchestrator's
schedule scan are indexed equality queries on this collection alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "flow_instances"

register_indexes(
    COLLECTION,
    [
        IndexModel([("flowId", ASCENDING), ("connectionId", ASCENDING)], unique=True, name="flow_connection"),
        IndexModel([("connectionId", ASCENDING)], name="connection"),
        IndexModel([("workspaceId", ASCENDING), ("eventType", ASCENDING)], name="workspace_event_type"),
        IndexModel(
            [("triggerType", ASCENDING), ("enabled", ASCENDING), ("nextRunAt", ASCENDING)],
            name="schedule_due",
        ),
    ],
)


class FlowInstanceExists(Exception):
    """This flow is already enabled for this connection."""


def insert(db: Database, document: dict[str, Any]) -> None:
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise FlowInstanceExists(document.get("_id")) from error


def find_by_id(db: Database, instance_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": instance_id})


def list_page(
    db: Database, query: dict[str, Any], *, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    query = dict(query)
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def of_flow(db: Database, flow_id: str) -> list[dict[str, Any]]:
    return list(db[COLLECTION].find({"flowId": flow_id}))


def of_connection(db: Database, connection_id: str) -> list[dict[str, Any]]:
    """Every instance on a connection (webhooks and data-record events match among these)."""
    return list(db[COLLECTION].find({"connectionId": connection_id}))


def with_event_type(db: Database, workspace_id: str, event_type: str) -> list[dict[str, Any]]:
    """Instances of the workspace whose app-event trigger listens to event_type."""
    return list(db[COLLECTION].find({"workspaceId": workspace_id, "eventType": event_type}))


def due_schedules(db: Database, now: datetime, *, limit: int = 500) -> list[dict[str, Any]]:
    """Enabled schedule-trigger instances whose nextRunAt has passed (for the orchestrator)."""
    return list(
        db[COLLECTION]
        .find({"triggerType": "schedule-trigger", "enabled": True, "nextRunAt": {"$lte": now}})
        .limit(limit)
    )


def update(db: Database, instance_id: str, fields: dict[str, Any]) -> bool:
    return db[COLLECTION].update_one({"_id": instance_id}, {"$set": fields}).matched_count == 1


def delete(db: Database, instance_id: str) -> bool:
    return db[COLLECTION].delete_one({"_id": instance_id}).deleted_count == 1


def delete_of_flow(db: Database, flow_id: str) -> int:
    return db[COLLECTION].delete_many({"flowId": flow_id}).deleted_count


def advance_schedule(
    db: Database, instance_id: str, due: datetime, following: datetime, fields: dict[str, Any] | None = None
) -> bool:
    """Move nextRunAt from `due` to `following`, only if no other orchestrator did already."""
    result = db[COLLECTION].update_one(
        {"_id": instance_id, "nextRunAt": due}, {"$set": {"nextRunAt": following, **(fields or {})}}
    )
    return result.modified_count == 1
