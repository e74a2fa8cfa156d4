"""GET /prometheus under a known queue load: every queue gauge checked against its expected value."""

from __future__ import annotations

import dataclasses
import re

from engine.app import create_app
from engine.jobs import execution
from engine.jobs.service import enqueue_job
from engine.store import jobs as store
from engine.store import limits as limits_store


def _gauge(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name}{labels} missing from:\n{text}"
    return float(match.group(1))


def _enqueue(services, customer, connection):
    return enqueue_job(
        services,
        kind="flow-run",
        workspace_id="ws1",
        customer_id=customer,
        connection_id=connection,
        payload={},
        launched_by="api",
    )


def test_workers_required_counts_running_and_startable_work_not_work_held_by_limits(
    services, config, fake_workers
):
    config = dataclasses.replace(config, enable_limits=True)
    services = dataclasses.replace(services, config=config)
    limits_store.put(services.db, "ws:ws1", {"parallelFlowRuns": 100})
    # Given 3 running runs (on three connections), with three live workers
    fake_workers(3)
    running = [_enqueue(services, f"r{i}", f"conn-r{i}") for i in range(3)]
    for i, job in enumerate(running):
        token = store.find(services.db, job.id)["dispatchToken"]
        assert execution.claim(services, job.id, token, f"worker-{i}") is not None
    # 100 runs held by parallelFlowRunsPerConnection=1 (their connection already runs one)
    for _ in range(100):
        _enqueue(services, "r0", "conn-r0")
    # and 5 ready runs that limits let start (each on its own connection and customer)
    for i in range(5):
        _enqueue(services, f"ready{i}", f"conn-ready{i}")
    # and 4 instant tasks waiting in the broker (no instant worker runs here), one action run running
    from engine.broker import INSTANT_QUEUE, publish
    from engine.domain.action_runs import RUN_ACTION_TASK
    from engine.domain.common import now

    for i in range(4):
        publish(services.broker, RUN_ACTION_TASK, INSTANT_QUEUE, [f"ar{i}"])
    services.db["action_runs"].insert_many(
        [
            {"_id": "ar-r", "state": "running", "pendingSince": now()},
            {"_id": "ar-done", "state": "completed"},
        ]
    )

    # When /prometheus is scraped
    text = create_app(config, services).test_client().get("/prometheus").get_data(as_text=True)

    # Then
    assert _gauge(text, "queued_tasks_workers") == 3
    assert _gauge(text, "queued_tasks_workers_required") == 3 + 5
    assert _gauge(text, "queued_tasks_jobs", '{kind="flow-run",state="running"}') == 3
    assert _gauge(text, "queued_tasks_jobs", '{kind="flow-run",state="queued"}') == 105
    assert _gauge(text, "instant_tasks_jobs_waiting") == 4
    assert _gauge(text, "instant_tasks_jobs_active") == 1


def test_every_replica_reports_the_same_values(services, config, fake_workers):
    fake_workers(2)
    for i in range(4):
        _enqueue(services, f"c{i}", f"conn{i}")
    scrapes = [
        create_app(config, services).test_client().get("/prometheus").get_data(as_text=True) for _ in range(2)
    ]
    for name in ("queued_tasks_workers", "queued_tasks_workers_required"):
        assert _gauge(scrapes[0], name) == _gauge(scrapes[1], name)
    assert _gauge(scrapes[0], "queued_tasks_workers_required") == 4  # limits off: all ready work counts
