"""Retention: which collections expire by which time field, their indexes, and batched deletion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from engine.store.mongo import register_indexes

CLEANUP_BATCH_SIZE = 500
"""Documents deleted per batch, so cleanup never holds the store for long."""


@dataclass(frozen=True)
class Retained:
    """A collection whose documents expire by a UTC datetime field (None: never, e.g. still running)."""

    collection: str
    time_field: str


RETAINED: list[Retained] = [
    Retained("jobs", "finishedAt"),
    Retained("flow_node_runs", "finishedAt"),
    Retained("action_runs", "finishedAt"),
    Retained("events", "receivedAt"),
    Retained("data_record_events", "createdAt"),
    Retained("schedule_fires", "at"),
]

for _retained in RETAINED:
    register_indexes(
        _retained.collection,
        [IndexModel([(_retained.time_field, ASCENDING)], name=f"retention_{_retained.time_field}")],
    )


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
        ids = [
            d["_id"]
            for d in collection.find({retained.time_field: {"$lt": cutoff}}, {"_id": 1}).limit(batch_size)
        ]
        if not ids:
            break
        deleted += collection.delete_many({"_id": {"$in": ids}}).deleted_count
    return deleted
