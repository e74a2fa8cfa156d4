"""Cleanup duty: delete old records in batches, and expired tmp-bucket objects."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from beat.duties import duty
from engine.services import Services

log = logging.getLogger(__name__)

RETENTION_DAYS = 30
"""Flow runs, node runs, logs and action-run records older than this are deleted."""
TMP_OBJECT_EXPIRY_DAYS = 7
"""Objects in TMP_S3_BUCKET older than this are deleted (production buckets should also expire them)."""
CLEANUP_BATCH_SIZE = 500
"""Documents deleted per batch, so cleanup never holds the store for long."""
CLEANUP_INTERVAL_SECONDS = 300.0


@dataclass(frozen=True)
class Retained:
    """A collection whose documents expire by a UTC datetime field."""

    collection: str
    time_field: str


RETAINED: list[Retained] = [
    Retained("jobs", "finishedAt"),
    Retained("flow_node_runs", "finishedAt"),
    Retained("action_runs", "finishedAt"),
    Retained("events", "receivedAt"),
]


def delete_older_than(services: Services, retained: Retained, cutoff: datetime, *,
                      batch_size: int = CLEANUP_BATCH_SIZE, max_batches: int = 100) -> int:
    """Delete documents whose time field is before cutoff, batch by batch. Returns how many."""
    collection = services.db[retained.collection]
    deleted = 0
    for _ in range(max_batches):
        ids = [d["_id"] for d in collection.find({retained.time_field: {"$lt": cutoff}}, {"_id": 1}).limit(batch_size)]
        if not ids:
            break
        deleted += collection.delete_many({"_id": {"$in": ids}}).deleted_count
    return deleted


@duty("cleanup", every_seconds=CLEANUP_INTERVAL_SECONDS)
def cleanup(services: Services, now: datetime, *, retention_days: int = RETENTION_DAYS,
            tmp_expiry_days: int = TMP_OBJECT_EXPIRY_DAYS) -> dict[str, int]:
    """Delete expired records and tmp objects; returns counts by collection."""
    cutoff = now - timedelta(days=retention_days)
    counts = {r.collection: delete_older_than(services, r, cutoff) for r in RETAINED}
    tmp_keys = services.blobs.keys_older_than(services.blobs.buckets.tmp, now - timedelta(days=tmp_expiry_days))
    for key in tmp_keys:
        services.blobs.delete(services.blobs.buckets.tmp, key)
    counts["tmp_objects"] = len(tmp_keys)
    if any(counts.values()):
        log.info("cleanup deleted %s", counts)
    return counts
