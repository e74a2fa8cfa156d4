"""Cleanup duty: delete old records in batches, and expired tmp-bucket objects."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from beat.duties import duty
from engine.services import Services
from engine.store.retention import RETAINED, delete_older_than

log = logging.getLogger(__name__)

RETENTION_DAYS = 30
"""Flow runs, node runs, logs and action-run records older than this are deleted."""
TMP_OBJECT_EXPIRY_DAYS = 7
"""Objects in TMP_S3_BUCKET older than this are deleted (production buckets should also expire them)."""
CLEANUP_INTERVAL_SECONDS = 300.0


@duty("cleanup", every_seconds=CLEANUP_INTERVAL_SECONDS)
def cleanup(
    services: Services,
    now: datetime,
    *,
    retention_days: int = RETENTION_DAYS,
    tmp_expiry_days: int = TMP_OBJECT_EXPIRY_DAYS,
) -> dict[str, int]:
    """Delete expired records and tmp objects; returns counts by collection."""
    cutoff = now - timedelta(days=retention_days)
    counts = {r.collection: delete_older_than(services.db, r, cutoff) for r in RETAINED}
    tmp_keys = services.blobs.keys_older_than(
        services.blobs.buckets.tmp, now - timedelta(days=tmp_expiry_days)
    )
    for key in tmp_keys:
        services.blobs.delete(services.blobs.buckets.tmp, key)
    counts["tmp_objects"] = len(tmp_keys)
    if any(counts.values()):
        log.info("cleanup deleted %s", counts)
    return counts
