"""The `data_records` and `data_record_events` collections.

`data_records`: the synced copy of each external record, `_id` = "<dataSourceId>:<externalId>"
(so a page's records are read with one `_id $in` query), unique on (dataSourceId, externalId),
stamped with the sync `generation` that last saw it: a full sync deletes `generation < current`.

`data_record_events`: the audit of every data-record event fired (created / updated / deleted),
with a deterministic `_id` so a page processed twice (resume after a crash) records it once.
`state` is `pending` until handed to the flows, then `emitted`; `unsubscribed` when no flow
listened to that change when it was recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from engine.store.mongo import register_indexes

COLLECTION = "data_records"
EVENTS_COLLECTION = "data_record_events"

register_indexes(
    COLLECTION,
    [
        IndexModel(
            [("dataSourceId", ASCENDING), ("externalId", ASCENDING)], unique=True, name="source_external"
        ),
        IndexModel([("dataSourceId", ASCENDING), ("generation", ASCENDING)], name="source_generation"),
    ],
)
register_indexes(
    EVENTS_COLLECTION,
    [
        IndexModel([("dataSourceId", ASCENDING), ("state", ASCENDING)], name="source_state"),
        IndexModel([("dataSourceId", ASCENDING), ("change", ASCENDING)], name="source_change"),
    ],
)


def record_id(data_source_id: str, external_id: str) -> str:
    return f"{data_source_id}:{external_id}"


def find_many(db: Database, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored records among these `_id`s (only their hash and generation), by `_id`."""
    if not ids:
        return {}
    return {d["_id"]: d for d in db[COLLECTION].find({"_id": {"$in": ids}}, {"hash": 1, "generation": 1})}


def insert_many(db: Database, documents: list[dict[str, Any]]) -> None:
    """Insert new records; one already there (a page replayed after a crash) is replaced."""
    if not documents:
        return
    try:
        db[COLLECTION].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        duplicates = {e["index"] for e in error.details.get("writeErrors", []) if e.get("code") == 11000}
        if len(duplicates) != len(error.details.get("writeErrors", [])):
            raise
        for index in duplicates:
            replace(db, documents[index])


def replace(db: Database, document: dict[str, Any]) -> None:
    db[COLLECTION].replace_one({"_id": document["_id"]}, document, upsert=True)


def stamp_generation(db: Database, ids: list[str], generation: int) -> None:
    """Mark unchanged records as seen by this full sync."""
    if ids:
        db[COLLECTION].update_many({"_id": {"$in": ids}}, {"$set": {"generation": generation}})


def older_than_generation(
    db: Database, data_source_id: str, generation: int, *, limit: int
) -> list[dict[str, Any]]:
    """Records a full sync of `generation` did not see (indexed range on (dataSourceId, generation))."""
    return list(
        db[COLLECTION]
        .find(
            {"dataSourceId": data_source_id, "generation": {"$lt": generation}},
            {"externalId": 1, "hash": 1, "record": 1},
        )
        .limit(limit)
    )


def delete_ids(db: Database, ids: list[str]) -> int:
    if not ids:
        return 0
    return db[COLLECTION].delete_many({"_id": {"$in": ids}}).deleted_count


def delete_for_source(db: Database, data_source_id: str) -> int:
    return db[COLLECTION].delete_many({"dataSourceId": data_source_id}).deleted_count


def count(db: Database, data_source_id: str) -> int:
    return db[COLLECTION].count_documents({"dataSourceId": data_source_id})


def all_of_source(db: Database, data_source_id: str) -> Iterable[dict[str, Any]]:
    return db[COLLECTION].find({"dataSourceId": data_source_id})


# --- events -------------------------------------------------------------------------------------


def insert_events(db: Database, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record events; returns those that were new (a duplicate `_id` was already recorded)."""
    if not documents:
        return []
    try:
        db[EVENTS_COLLECTION].insert_many(documents, ordered=False)
        return documents
    except BulkWriteError as error:
        failed = error.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in failed):
            raise
        duplicate = {e["index"] for e in failed}
        return [d for i, d in enumerate(documents) if i not in duplicate]


def mark_events(db: Database, ids: list[str], fields: dict[str, Any]) -> None:
    if len(ids) == 1:
        db[EVENTS_COLLECTION].update_one({"_id": ids[0]}, {"$set": fields})
    elif ids:
        db[EVENTS_COLLECTION].update_many({"_id": {"$in": ids}}, {"$set": fields})


def pending_events(db: Database, data_source_id: str, *, limit: int) -> list[dict[str, Any]]:
    return list(db[EVENTS_COLLECTION].find({"dataSourceId": data_source_id, "state": "pending"}).limit(limit))


def count_events(db: Database, data_source_id: str, change: str | None = None) -> int:
    query: dict[str, Any] = {"dataSourceId": data_source_id}
    if change:
        query["change"] = change
    return db[EVENTS_COLLECTION].count_documents(query)


def delete_events_for_source(db: Database, data_source_id: str) -> int:
    return db[EVENTS_COLLECTION].delete_many({"dataSourceId": data_source_id}).deleted_count
