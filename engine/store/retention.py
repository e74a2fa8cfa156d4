"""Retention: which collections expire by which time field, their indexes, and batched deletion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from engine.ids import first_id_at
from engine.store.mongo import register_indexes

CLEANUP_BATCH_SIZE = 500
"""Documents deleted per batch, so cleanup never holds the store for long."""


@dataclass(frozen=True)
class Retained:
    """A collection whose documents expire by a UTC datetime field (None: never, e.g. still running).

    With `id_prefix`, documents expire by the creation time in their id instead (`<prefix>_<ObjectId>`,
    engine/ids.py), through the `_id` index, and a document whose time field is None or absent
    stays; for a collection written on a hot path, where one more index costs every write."""

    collection: str
    time_field: str
    id_prefix: str | None = None


RETAINED: list[Retained] = [
    Retained("jobs", "finishedAt"),
    Retained("flow_node_runs", "finishedAt"),
    Retained("action_runs", "finishedAt", id_prefix="arun"),
    Retained("events", "receivedAt"),
    Retained("data_record_events", "createdAt"),
    Retained("schedule_fires", "at"),
]

for _retained in RETAINED:
    if _retained.id_prefix is None:
        register_indexes(
            _retained.collection,
            [IndexModel([(_retained.time_field, ASCENDING)], name=f"retention_{_retained.time_field}")],
        )


def _expired(retained: Retained, cutoff: datetime) -> dict[str, Any]:
    if retained.id_prefix is None:
        return {retained.time_field: {"$lt": cutoff}}
    return {
        "_id": {"$gt": f"{retained.id_prefix}_", "$lt": first_id_at(retained.id_prefix, cutoff)},
        retained.time_field: {"$ne": None},
    }


def delete_older_than(
    db: Database,
    retained: Retained,
    cutoff: datetime,
    *,
    batch_size: int = CLEANUP_BATCH_SIZE,
    max_batches: int = 100,
) -> int:
    """Delete documents whose time field is before cutoff, batch by batch. Returns how many."""
    collection = db[retained.collection]
    deleted = 0
    for _ in range(max_batches):
        ids = [d["_id"] for d in collection.find(_expired(retained, cutoff), {"_id": 1}).limit(batch_size)]
        if not ids:
            break
        deleted += collection.delete_many({"_id": {"$in": ids}}).deleted_count
    return deleted
