"""Cleanup: records past retention are deleted in batches; newer ones and unfinished runs stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beat.cleanup import cleanup
from engine.store.retention import RETAINED, Retained, delete_older_than

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_records_older_than_retention_are_deleted_and_others_kept(services):
    old, recent = NOW - timedelta(days=45), NOW - timedelta(days=2)
    for retained in RETAINED:
        collection = services.db[retained.collection]
        collection.insert_many([{"_id": f"old{i}", retained.time_field: old} for i in range(7)])
        collection.insert_many([{"_id": f"new{i}", retained.time_field: recent} for i in range(3)])
        # A run still going has no finish time: it must never be cleaned up.
        collection.insert_one({"_id": "unfinished", retained.time_field: None})
    counts = cleanup(services, NOW, retention_days=30)
    for retained in RETAINED:
        assert counts[retained.collection] == 7
        left = sorted(d["_id"] for d in services.db[retained.collection].find({}, {"_id": 1}))
        assert left == ["new0", "new1", "new2", "unfinished"]


def test_deletion_goes_in_batches_until_done(services):
    retained = Retained("jobs", "finishedAt")
    services.db["jobs"].insert_many(
        [{"_id": f"j{i}", "finishedAt": NOW - timedelta(days=60)} for i in range(25)]
    )
    assert (
        delete_older_than(services.db, retained, NOW - timedelta(days=30), batch_size=10, max_batches=2) == 20
    )
    assert delete_older_than(services.db, retained, NOW - timedelta(days=30), batch_size=10) == 5
    assert services.db["jobs"].count_documents({}) == 0


def test_expired_tmp_objects_are_deleted(services):
    bucket = services.blobs.buckets.tmp
    services.blobs.put(bucket, "outputs/big.json", b"{}")
    # Objects were written just now: with an expiry in the future they stay...
    assert cleanup(services, datetime.now(UTC), tmp_expiry_days=7)["tmp_objects"] == 0
    # ...and once they are older than the expiry, they go.
    assert cleanup(services, datetime.now(UTC) + timedelta(days=8), tmp_expiry_days=7)["tmp_objects"] == 1
    assert services.blobs.keys_older_than(bucket, datetime.now(UTC) + timedelta(days=1)) == []
