"""Fair dispatch and limits on real queued workers."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.jobs.model import JobState
from engine.jobs.service import enqueue_job
from engine.store import jobs as store
from engine.store import limits as limits_store
from tests.e2e.jobhelpers import events, start_worker, wait_finished, wait_for

pytestmark = pytest.mark.slow

A_RUN_SECONDS = 0.2
DISPATCH_MARGIN_SECONDS = 1.0
"""One dispatch plus the worker taking the message, generously (shared 2-core machine)."""


def test_a_single_run_of_b_waits_for_one_of_a_s_runs_not_for_a_s_backlog(services, engine_env, start_engine):
    # Given one queued worker and customer A's 2,000 queued runs
    services = dataclasses.replace(services, config=dataclasses.replace(services.config, enable_limits=True))
    start_worker(start_engine, {**engine_env, "ENABLE_LIMITS": "1"})
    enqueue_started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # as several API processes would
        a_jobs = list(
            pool.map(
                lambda _: enqueue_job(
                    services,
                    kind="test-flow-sleep",
                    workspace_id="ws1",
                    customer_id="A",
                    connection_id="connA",
                    payload={"seconds": A_RUN_SECONDS},
                    launched_by="api",
                ),
                range(2000),
            )
        )
    enqueue_seconds = time.monotonic() - enqueue_started
    wait_for(lambda: events(services, what="start"), 30, what="A's first run to start")
    # When B queues one run
    b_job = enqueue_job(
        services,
        kind="test-flow-sleep",
        workspace_id="ws1",
        customer_id="B",
        connection_id="connB",
        payload={"seconds": 0.01},
        launched_by="api",
    )
    final = wait_finished(services, b_job.id, 30)
    # Then B started within the time of A's current run plus one dispatch
    wait = (final.started_at - final.created_at).total_seconds()
    a_started_before_b = services.db["jobs"].count_documents(
        {"customerId": "A", "startedAt": {"$gte": final.created_at, "$lt": final.started_at}}
    )
    print(
        f"\nB waited {wait:.3f} s behind A's backlog of {len(a_jobs)} runs "
        f"({a_started_before_b} of A's runs started between B's enqueue and start; enqueueing A's runs took {enqueue_seconds:.1f} s)"
    )
    assert final.state is JobState.COMPLETED
    assert wait <= A_RUN_SECONDS + DISPATCH_MARGIN_SECONDS
    assert a_started_before_b <= 1
    assert (
        services.db["jobs"].count_documents({"customerId": "A", "state": "queued"}) > 1000
    )  # A's backlog remains


def _overlaps(intervals: list[tuple[float, float, str]]) -> list[tuple[str, str]]:
    """Pairs of jobs whose runs overlap in time."""
    intervals = sorted(intervals)
    return [(a[2], b[2]) for a, b in zip(intervals, intervals[1:], strict=False) if b[0] < a[1]]


def _intervals(services, key: str) -> dict[str, list[tuple[float, float, str]]]:
    by_job: dict[str, dict] = {}
    for event in events(services):
        by_job.setdefault(event["jobId"], {})[event["what"]] = event
    grouped: dict[str, list[tuple[float, float, str]]] = {}
    for job_id, pair in by_job.items():
        grouped.setdefault(pair["start"][key], []).append(
            (pair["start"]["mono"], pair["end"]["mono"], job_id)
        )
    return grouped


@pytest.mark.parametrize(
    "limit,jobs,key",
    [
        ("parallelFlowRunsPerConnection", [("A", "conn1")] * 24, "connectionId"),
        ("parallelBackgroundJobsPerCustomer", [("A", "conn1"), ("A", "conn2")] * 12, "customerId"),
        ("parallelFlowRuns", [("A", "conn1"), ("B", "conn2")] * 12, "workspaceId"),
    ],
)
def test_a_limit_of_one_never_overlaps_with_two_workers(services, engine_env, start_engine, limit, jobs, key):
    # every process of a deployment has the same ENABLE_LIMITS, this test's one too (it enqueues and dispatches)
    services = dataclasses.replace(services, config=dataclasses.replace(services.config, enable_limits=True))
    limits_store.put(
        services.db,
        "ws:ws1",
        {
            "parallelFlowRunsPerConnection": 10,
            "parallelFlowRuns": 10,
            "parallelBackgroundJobsPerCustomer": 10,
            limit: 1,
        },
    )
    env = {**engine_env, "ENABLE_LIMITS": "1"}
    start_worker(start_engine, env)
    start_worker(start_engine, env)
    # a control job of another customer/workspace runs alongside: the two workers are really both busy
    control = enqueue_job(
        services,
        kind="test-flow-sleep",
        workspace_id="ws2",
        customer_id="Z",
        connection_id="connZ",
        payload={"seconds": 1.0},
        launched_by="api",
    )
    queued = [
        enqueue_job(
            services,
            kind="test-flow-sleep",
            workspace_id="ws1",
            customer_id=customer,
            connection_id=connection,
            payload={"seconds": 0.05},
            launched_by="api",
        )
        for customer, connection in jobs
    ]
    for job in [control, *queued]:
        assert wait_finished(services, job.id, 60).state is JobState.COMPLETED
    grouped = _intervals(services, key)
    limited = {k: v for k, v in grouped.items() if k not in ("ws2", "Z", "connZ")}
    assert sum(len(v) for v in limited.values()) >= 24
    overlapping = [pair for v in limited.values() for pair in _overlaps(v)]
    assert not overlapping, [
        services.db["jobs"].find_one(
            {"_id": {"$in": list(p)}},
            {"slots": 1, "slotHolder": 1, "startedAt": 1, "finishedAt": 1, "dispatchedAt": 1},
        )
        for p in overlapping
    ]
    # the last finish releases its slots just after recording its state
    wait_for(lambda: store.slot_holders(services.db, "global") == [], 5, what="every slot to be released")
