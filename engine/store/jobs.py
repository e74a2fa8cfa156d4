"""The `jobs` collection (one document per queued task) and its counters.

Hot paths use only insert_one, find_one and update_one by _id (about 1 ms on every store):
claims, lease renewals and finishes are conditional updates on the job's _id.

`job_queues`: one document per backlog lane (`conn:<id>` / `cus:<id>`) and per workspace, each
with `queued` (jobs in state queued), taken with a conditional $inc so the queue-size limits
hold under concurrency without counting documents.

`job_slots`: one document per limit key with `holders`, the ids of the jobs holding a slot.
A slot is taken by `$addToSet` only while the array is shorter than the limit (a conditional
update: two dispatchers can never both take the last slot) and released by `$pull` (idempotent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "jobs"
QUEUES = "job_queues"
SLOTS = "job_slots"


def workspace_queue(workspace_id: str) -> str:
    """The queue counting every queued job of a workspace (queuedTasksQueueSize)."""
    return f"ws:{workspace_id}"


register_indexes(
    COLLECTION,
    [
        IndexModel([("state", ASCENDING)], name="state"),
        IndexModel([("workspaceId", ASCENDING), ("createdAt", DESCENDING)], name="workspace_created"),
        IndexModel([("finishedAt", ASCENDING)], name="finished"),
    ],
)


def insert(db: Database, document: dict[str, Any]) -> None:
    db[COLLECTION].insert_one(document)


def find(db: Database, job_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": job_id})


def find_many(db: Database, job_ids: list[str], projection: dict | None = None) -> list[dict[str, Any]]:
    return list(db[COLLECTION].find({"_id": {"$in": job_ids}}, projection))


def update_if(db: Database, job_id: str, conditions: dict[str, Any], update: dict[str, Any]) -> bool:
    """Apply update to the job only if it matches conditions; True if it did (the arbiter of every transition)."""
    return db[COLLECTION].update_one({"_id": job_id, **conditions}, update).modified_count == 1


def in_state(
    db: Database, state: str, projection: dict | None = None, extra: dict | None = None, limit: int = 0
) -> list[dict[str, Any]]:
    """Jobs in one state (indexed equality), optionally filtered further."""
    return list(db[COLLECTION].find({"state": state, **(extra or {})}, projection).limit(limit))


def count_in_state(db: Database, state: str) -> int:
    return db[COLLECTION].count_documents({"state": state})


def page(
    db: Database, query: dict[str, Any], *, before: tuple[datetime, str] | None, limit: int
) -> list[dict]:
    """Newest first; `before` is the (createdAt, _id) of the previous page's last job."""
    if before is not None:
        created, job_id = before
        query = {
            **query,
            "$or": [{"createdAt": {"$lt": created}}, {"createdAt": created, "_id": {"$lt": job_id}}],
        }
    return list(
        db[COLLECTION].find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)]).limit(limit)
    )


def ready_by_lane(db: Database) -> list[dict[str, Any]]:
    """Queued, undispatched jobs grouped by lane (with kind and tenancy): the metrics' truth."""
    return list(
        db[COLLECTION].aggregate(
            [
                {"$match": {"state": "queued", "dispatchedAt": None}},
                {
                    "$group": {
                        "_id": {
                            "lane": "$lane",
                            "kind": "$kind",
                            "workspaceId": "$workspaceId",
                            "customerId": "$customerId",
                            "connectionId": "$connectionId",
                        },
                        "n": {"$sum": 1},
                    }
                },
            ]
        )
    )


def queued_undispatched_ids(db: Database) -> list[tuple[str, str]]:
    """(lane, id) of every queued job waiting in the backlog, oldest first (a full scan: recovery only)."""
    cursor = (
        db[COLLECTION].find({"state": "queued", "dispatchedAt": None}, {"lane": 1}).sort("_id", ASCENDING)
    )
    return [(d.get("lane", ""), d["_id"]) for d in cursor]


# --- queue-size counters ---------------------------------------------------------------------


def take_queue_place(db: Database, queue: str, limit: int) -> bool:
    """Count one more queued job in this queue if it holds fewer than limit; False if full."""
    collection = db[QUEUES]
    if collection.update_one(
        {"_id": queue, "queued": {"$lt": limit}}, {"$inc": {"queued": 1}}
    ).modified_count:
        return True
    if collection.find_one({"_id": queue}, {"_id": 1}) is None:
        _create(collection, {"_id": queue, "queued": 0})
    # Again: the document may have been created by another process since the first try.
    return (
        collection.update_one(
            {"_id": queue, "queued": {"$lt": limit}}, {"$inc": {"queued": 1}}
        ).modified_count
        == 1
    )


def _create(collection, document: dict[str, Any]) -> None:
    """Create a counter document unless it exists (a concurrent creator may win: fine)."""
    try:
        collection.insert_one(document)
    except DuplicateKeyError:
        pass


def release_queue_place(db: Database, queue: str, count: int = 1) -> None:
    db[QUEUES].update_one({"_id": queue}, {"$inc": {"queued": -count}})


def release_queue_places(db: Database, queues: list[str]) -> None:
    """One fewer queued job in each of these queues, in one write."""
    db[QUEUES].update_many({"_id": {"$in": queues}}, {"$inc": {"queued": -1}})


def set_queue_count(db: Database, queue: str, count: int) -> None:
    db[QUEUES].update_one({"_id": queue}, {"$set": {"queued": count}}, upsert=True)


def queue_counts(db: Database) -> dict[str, int]:
    return {d["_id"]: d.get("queued", 0) for d in db[QUEUES].find({})}


# --- parallelism slots -------------------------------------------------------------------------


def take_slot(db: Database, key: str, job_id: str, limit: int) -> bool:
    """Add job_id to the key's holders if fewer than limit hold it (or it already does)."""
    if limit <= 0:
        return False
    collection = db[SLOTS]
    full = f"holders.{limit - 1}"
    result = collection.update_one({"_id": key, full: {"$exists": False}}, {"$addToSet": {"holders": job_id}})
    if result.matched_count:
        return True
    if collection.find_one({"_id": key}, {"_id": 1}) is None:
        _create(collection, {"_id": key, "holders": []})
    # Again: the document may have been created by another process since the first try.
    return collection.update_one(
        {"_id": key, full: {"$exists": False}}, {"$addToSet": {"holders": job_id}}
    ).matched_count == 1 or job_id in slot_holders(db, key)


def transfer_slot(db: Database, key: str, old_holder: str, new_holder: str) -> bool:
    """Replace old_holder by new_holder in the key's holders, in one write; False if old_holder
    no longer holds a slot there (nothing changed)."""
    return (
        db[SLOTS]
        .update_one({"_id": key, "holders": old_holder}, {"$set": {"holders.$": new_holder}})
        .modified_count
        == 1
    )


def release_slots(db: Database, keys: list[str], job_id: str) -> None:
    """Remove job_id from the holders of every key, in one write (idempotent)."""
    if len(keys) == 1:
        db[SLOTS].update_one({"_id": keys[0]}, {"$pull": {"holders": job_id}})
    elif keys:
        db[SLOTS].update_many({"_id": {"$in": list(keys)}}, {"$pull": {"holders": job_id}})


def slot_holders(db: Database, key: str) -> list[str]:
    document = db[SLOTS].find_one({"_id": key})
    return list(document.get("holders", [])) if document else []


def all_slots(db: Database) -> dict[str, list[str]]:
    return {d["_id"]: list(d.get("holders", [])) for d in db[SLOTS].find({})}
