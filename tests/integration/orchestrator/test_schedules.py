"""Schedule triggers: each due time fires exactly once, missed fires follow the catch-up window,
and a still-running previous run is skipped by the default overlap policy."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from beat.schedules import CATCH_UP_WINDOW_SECONDS, fire_due_schedules
from engine.store import flow_instances, schedule_fires
from tasks.app import celery_app, configure_celery

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def instance(services, config):
    configure_celery(celery_app, config)
    document = {
        "_id": "fi_schedule",
        "workspaceId": "ws_1",
        "flowId": "flow_1",
        "connectionId": "conn_1",
        "customerId": "cust_1",
        "enabled": True,
        "parameters": {},
        "triggerType": "schedule-trigger",
        "schedule": {"cron": "* * * * *", "timezone": "UTC"},
        "nextRunAt": START,
        "createdAt": START,
        "updatedAt": START,
    }
    flow_instances.insert(services.db, document)
    return document


def scheduled_runs(services) -> list[dict]:
    return list(services.db["jobs"].find({"payload.flowInstanceId": "fi_schedule"}))


def test_two_replicas_firing_at_once_start_each_due_run_exactly_once(services, instance):
    # Given two orchestrators that both believe they are active (a split brain), ticking together
    # over 20 minutes of a once-a-minute schedule.
    for minute in range(20):
        now = START + timedelta(minutes=minute, seconds=1)
        threads = [threading.Thread(target=fire_due_schedules, args=(services, now)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # The run of the previous minute finished, so overlap does not apply.
        services.db["jobs"].update_many({}, {"$set": {"state": "completed"}})
    runs = scheduled_runs(services)
    dues = sorted(run["payload"]["input"]["scheduledAt"] for run in runs)
    assert len(runs) == 20
    assert dues == sorted({d for d in dues})
    assert all(run["launchedBy"] == "schedule" for run in runs)
    assert len(schedule_fires.of_instance(services.db, "fi_schedule")) == 20
    assert flow_instances.find_by_id(services.db, "fi_schedule")["nextRunAt"] == START + timedelta(minutes=20)


def test_a_fire_missed_within_the_catch_up_window_runs_once_on_recovery(services, instance):
    # All orchestrators were down for 3 minutes: three minute-fires were missed.
    fire_due_schedules(services, START + timedelta(minutes=3))
    fire_due_schedules(services, START + timedelta(minutes=3, seconds=1))
    assert len(scheduled_runs(services)) == 1
    assert flow_instances.find_by_id(services.db, "fi_schedule")["nextRunAt"] == START + timedelta(minutes=4)


def test_a_fire_missed_beyond_the_window_is_recorded_as_skipped(services, instance):
    late = START + timedelta(seconds=CATCH_UP_WINDOW_SECONDS + 60)
    fire_due_schedules(services, late)
    assert scheduled_runs(services) == []
    fires = schedule_fires.of_instance(services.db, "fi_schedule")
    assert [f["outcome"] for f in fires] == ["skipped-missed"]
    assert flow_instances.find_by_id(services.db, "fi_schedule")["nextRunAt"] > late


def test_overlap_skips_while_the_previous_scheduled_run_is_still_going(services, instance):
    fire_due_schedules(services, START + timedelta(seconds=1))
    assert len(scheduled_runs(services)) == 1  # still queued: nothing marked it finished
    fire_due_schedules(services, START + timedelta(minutes=1, seconds=1))
    assert len(scheduled_runs(services)) == 1
    outcomes = [f["outcome"] for f in schedule_fires.of_instance(services.db, "fi_schedule")]
    assert outcomes == ["fired", "skipped-overlap"]


def test_a_disabled_instance_does_not_fire(services, instance):
    flow_instances.update(services.db, "fi_schedule", {"enabled": False})
    fire_due_schedules(services, START + timedelta(seconds=1))
    assert scheduled_runs(services) == []
