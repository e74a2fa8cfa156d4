"""Recovery: an external event stored but never queued (a crash in between) is queued once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beat.recovery import recover
from engine.store import events as events_store
from tasks.app import celery_app, configure_celery


def test_a_stored_event_without_a_job_is_queued_once_by_recovery(services, config):
    configure_celery(celery_app, config)
    # Given an event the API stored just before it crashed (no processing job yet).
    events_store.insert(
        services.db,
        {
            "_id": "evt_lost",
            "workspaceId": "ws_1",
            "customerId": "cust_1",
            "connectionId": "conn_1",
            "state": "received",
            "receivedAt": datetime.now(UTC) - timedelta(minutes=5),
            "body": {},
        },
    )
    # And one that was just received and is being queued right now: left alone.
    events_store.insert(
        services.db,
        {
            "_id": "evt_fresh",
            "workspaceId": "ws_1",
            "customerId": "cust_1",
            "connectionId": "conn_1",
            "state": "received",
            "receivedAt": datetime.now(UTC),
            "body": {},
        },
    )
    # When recovery runs twice (say, from two replicas in a split brain).
    recover(services, datetime.now(UTC))
    recover(services, datetime.now(UTC))
    # Then the lost event has exactly one processing job, and the fresh one none.
    jobs = list(services.db["jobs"].find({"payload.eventId": {"$in": ["evt_lost", "evt_fresh"]}}))
    assert [job["_id"] for job in jobs] == ["job_evt_lost"]
    assert services.db["events"].find_one({"_id": "evt_lost"})["jobId"] == "job_evt_lost"
