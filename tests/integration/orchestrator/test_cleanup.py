"""Cleanup: records past retention are deleted in batches; newer ones and unfinished runs stay."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from beat.cleanup import cleanup
from engine.store.retention import RETAINED, Retained, delete_older_than

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _id(retained: Retained, name: str, when: datetime) -> str:
    """A document id: the name, or, when the collection's ids carry their time, an id of `when`."""
    if retained.id_prefix is None:
        return name
    return f"{retained.id_prefix}_{str(ObjectId.from_datetime(when))[:16]}{zlib.crc32(name.encode()):08x}"


def test_records_older_than_retention_are_deleted_and_others_kept(services):
    old, recent = NOW - timedelta(days=45), NOW - timedelta(days=2)
    for retained in RETAINED:
        collection = services.db[retained.collection]
        docs = [(f"old{i}", old, old) for i in range(7)] + [(f"new{i}", recent, recent) for i in range(3)]
        # A run still going has no finish time: it must never be cleaned up, however old.
        docs.append(("unfinished", old, None))
        collection.insert_many([{"_id": _id(retained, n, at), retained.time_field: t} for n, at, t in docs])
    counts = cleanup(services, NOW, retention_days=30)
    for retained in RETAINED:
        assert counts[retained.collection] == 7
        left = {d["_id"] for d in services.db[retained.collection].find({}, {"_id": 1})}
        kept = [("new0", recent), ("new1", recent), ("new2", recent), ("unfinished", old)]
        assert left == {_id(retained, name, at) for name, at in kept}


def test_action_runs_expire_by_the_time_in_their_id_without_a_time_index(services):
    # Given action runs created 45 and 2 days ago, finished, and one created 45 days ago still pending
    from engine.ids import first_id_at

    retained = next(r for r in RETAINED if r.collection == "action_runs")
    old = first_id_at("arun", NOW - timedelta(days=45))
    new = first_id_at("arun", NOW - timedelta(days=2))
    services.db.action_runs.insert_many(
        [
            {"_id": old, "finishedAt": NOW - timedelta(days=45)},
            {"_id": new, "finishedAt": NOW - timedelta(days=2)},
            {"_id": old[:-1] + "1", "state": "queued", "pendingSince": NOW - timedelta(days=45)},
        ]
    )
    # When retention runs, only the old finished one goes
    assert delete_older_than(services.db, retained, NOW - timedelta(days=30)) == 1
    assert {d["_id"] for d in services.db.action_runs.find()} == {new, old[:-1] + "1"}
    # And no index on the time field is kept for it
    assert all("finishedAt" not in str(i["key"]) for i in services.db.action_runs.list_indexes())


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
