"""The `data_sources` collection: one document per synced collection of a connection.

Besides its definition, the document is the sync's progress record: `currentSync` (cursor,
pages, records seen of the running or interrupted sync) is written after every page, so a
crashed sync resumes from its cursor. `activeJobId` is the "one sync at a time" claim, taken
and released with conditional updates (fast by `_id`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from engine.store.mongo import register_indexes

COLLECTION = "data_sources"

register_indexes(
    COLLECTION,
    [
        IndexModel([("workspaceId", ASCENDING)], name="workspace"),
        IndexModel([("connectionId", ASCENDING)], name="connection"),
        IndexModel([("nextIncrementalAt", ASCENDING)], name="next_incremental"),
        IndexModel([("nextFullAt", ASCENDING)], name="next_full"),
        IndexModel([("state", ASCENDING)], name="state"),
    ],
)


def insert(db: Database, document: dict[str, Any]) -> None:
    db[COLLECTION].insert_one(document)


def find_by_id(db: Database, data_source_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": data_source_id})


def of_connection(db: Database, connection_id: str) -> list[dict[str, Any]]:
    return list(db[COLLECTION].find({"connectionId": connection_id}))


def find_for_connection(
    db: Database, connection_id: str, collection: str, kind: str
) -> dict[str, Any] | None:
    for document in of_connection(db, connection_id):
        if document.get("collection") == collection and document.get("kind") == kind:
            return document
    return None


def list_page(
    db: Database, workspace_id: str, *, customer_id: str | None, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if customer_id:
        query["customerId"] = customer_id
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def update(
    db: Database,
    data_source_id: str,
    fields: dict[str, Any],
    *,
    unset: list[str] | None = None,
    only_if: dict[str, Any] | None = None,
) -> bool:
    """Set fields (and unset names) when the document matches `only_if` too; True when it did."""
    change: dict[str, Any] = {}
    if fields:
        change["$set"] = fields
    if unset:
        change["$unset"] = {name: "" for name in unset}
    query = {"_id": data_source_id, **(only_if or {})}
    return db[COLLECTION].update_one(query, change).matched_count == 1


def claim(
    db: Database,
    data_source_id: str,
    job_id: str,
    fields: dict[str, Any],
    only_if: dict[str, Any] | None = None,
) -> bool:
    """Take the one-sync-at-a-time claim for job_id; False when another job holds it."""
    return update(
        db,
        data_source_id,
        {"activeJobId": job_id, **fields},
        only_if={"activeJobId": None, **(only_if or {})},
    )


def release(db: Database, data_source_id: str, job_id: str, fields: dict[str, Any]) -> bool:
    """Give the claim back (only the job holding it can)."""
    return update(db, data_source_id, {"activeJobId": None, **fields}, only_if={"activeJobId": job_id})


def due(db: Database, field: str, now: datetime, *, limit: int) -> list[dict[str, Any]]:
    """Data sources whose `field` (nextIncrementalAt | nextFullAt) is at or before now (indexed range)."""
    return list(db[COLLECTION].find({field: {"$lte": now}}).limit(limit))


def in_state(db: Database, state: str, *, limit: int) -> list[dict[str, Any]]:
    return list(db[COLLECTION].find({"state": state}).limit(limit))


def delete(db: Database, data_source_id: str) -> bool:
    return db[COLLECTION].delete_one({"_id": data_source_id}).deleted_count == 1
