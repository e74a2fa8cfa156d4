"""Fair dispatch, limits and recovery against the real stores, with workers simulated in-process
(claim/finish are the functions a worker calls; messages go to the real Redis broker)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import TooManyRequests
from engine.jobs import execution
from engine.jobs.dispatch import GLOBAL_SLOT, dispatch, dispatch_and_take
from engine.jobs.model import JobState
from engine.jobs.reconcile import reconcile
from engine.jobs.service import enqueue_job, get_job, request_stop
from engine.store import jobs as store
from engine.store import limits as limits_store


def _enqueue(services, customer, connection=None, kind="flow-run", workspace="ws1"):
    return enqueue_job(
        services,
        kind=kind,
        workspace_id=workspace,
        customer_id=customer,
        connection_id=connection,
        payload={},
        launched_by="api",
    )


def _dispatched(services):
    return {d["_id"]: d for d in store.in_state(services.db, "queued", extra={"dispatchedAt": {"$ne": None}})}


def _messages(services) -> int:
    return services.redis.llen("queued")


def _run_one(services, job_id, worker="w1"):
    """What a worker does with a message: claim, then finish completed (which releases slots)."""
    document = store.find(services.db, job_id)
    job = execution.claim(services, job_id, document["dispatchToken"], worker)
    assert job is not None
    assert execution.finish(services, job, worker, JobState.COMPLETED, result={"ok": True})
    dispatch(services)


def test_nothing_is_sent_without_live_workers(services):
    job = _enqueue(services, "A", "connA")
    assert get_job(services, job.id).dispatched_at is None
    assert _messages(services) == 0


def test_one_message_per_free_worker(services, fake_workers):
    fake_workers(2)
    for _ in range(10):
        _enqueue(services, "A", "connA", kind="test-noop")
    assert len(_dispatched(services)) == 2
    assert _messages(services) == 2


def test_a_single_run_of_b_goes_next_after_a_deep_backlog(services, fake_workers):
    # Given one worker and customer A's 200 queued runs (the first one dispatched)
    fake_workers(1)
    a_jobs = [_enqueue(services, "A", "connA", kind="test-noop") for _ in range(200)]
    first = list(_dispatched(services))
    assert first == [a_jobs[0].id]
    # When B queues one run, and A's current run finishes
    b_job = _enqueue(services, "B", "connB", kind="test-noop")
    _run_one(services, first[0])
    # Then B's run is the one dispatched next
    assert list(_dispatched(services)) == [b_job.id]
    _run_one(services, b_job.id)
    assert list(_dispatched(services)) == [a_jobs[1].id]


@pytest.mark.parametrize(
    "limit_name,limit_key,jobs",
    [
        ("parallelFlowRunsPerConnection", "conn", [("A", "c1")] * 6),
        (
            "parallelBackgroundJobsPerCustomer",
            "cus",
            [("A", "c1"), ("A", "c2"), ("A", "c3"), ("A", "c4")] * 2,
        ),
        ("parallelFlowRuns", "ws", [("A", "c1"), ("B", "c2"), ("C", "c3"), ("D", "c4")] * 2),
    ],
)
def test_parallel_limits_hold_with_many_free_workers(services, fake_workers, limit_name, limit_key, jobs):
    services = dataclasses.replace(services, config=dataclasses.replace(services.config, enable_limits=True))
    limits_store.put(
        services.db,
        "ws:ws1",
        {
            "parallelFlowRuns": 100,
            "parallelBackgroundJobsPerCustomer": 100,
            "parallelFlowRunsPerConnection": 100,
            limit_name: 2,
        },
    )
    fake_workers(8)
    for customer, connection in jobs:
        _enqueue(services, customer, connection)
    dispatched = _dispatched(services)
    assert len(dispatched) == 2
    # finishing one opens exactly one slot
    _run_one(services, next(iter(dispatched)))
    assert len(_dispatched(services)) == 2


def test_queue_size_per_connection_refuses_with_429_and_creates_nothing(services):
    limits_store.put(services.db, "ws:ws1", {"flowRunsQueueSizePerConnection": 3})
    for _ in range(3):
        _enqueue(services, "A", "c1")
    before = services.db["jobs"].count_documents({})
    with pytest.raises(TooManyRequests) as error:
        _enqueue(services, "A", "c1")
    assert error.value.field == "flowRunsQueueSizePerConnection"
    assert services.db["jobs"].count_documents({}) == before
    _enqueue(services, "A", "c2")  # another connection is not affected


def test_stop_a_queued_job_at_once_and_release_its_slot(services, fake_workers):
    fake_workers(1)
    first = _enqueue(services, "A", "c1", kind="test-noop")
    second = _enqueue(services, "B", "c2", kind="test-noop")
    stopped = request_stop(services, first.id)
    assert stopped.state is JobState.STOPPED
    assert list(_dispatched(services)) == [second.id]
    # the stale message of the stopped job cannot be claimed
    assert execution.claim(services, first.id, "whatever", "w1") is None


def test_expired_lease_goes_back_to_queue_then_fails_after_max_attempts(services, fake_workers):
    fake_workers(1)
    job = enqueue_job(
        services,
        kind="test-noop",
        workspace_id="ws1",
        customer_id="A",
        connection_id=None,
        payload={},
        launched_by="api",
        max_attempts=2,
    )
    for attempt in (1, 2):
        document = store.find(services.db, job.id)
        claimed = execution.claim(services, job.id, document["dispatchToken"], f"dead-{attempt}")
        assert claimed.attempts == attempt
        report = reconcile(services, datetime.now(UTC) + timedelta(minutes=5))
    assert report.failed == [job.id]
    final = get_job(services, job.id)
    assert final.state is JobState.FAILED and final.error["type"] == "worker_lost" and final.attempts == 2
    assert store.slot_holders(services.db, GLOBAL_SLOT) == []


def test_flushall_loses_nothing(services, fake_workers):
    fake_workers(1)
    jobs = [_enqueue(services, c, f"conn-{c}", kind="test-noop") for c in "ABC"]
    services.redis.flushall()
    fake_workers(1)
    done = set()
    for _ in range(10):
        reconcile(services, datetime.now(UTC) + timedelta(seconds=60))  # old enough to re-send
        for job_id in _dispatched(services):
            _run_one(services, job_id)
            done.add(job_id)
    assert done == {j.id for j in jobs}
    assert all(get_job(services, j.id).state is JobState.COMPLETED for j in jobs)


def test_counters_and_slots_are_exact_when_processes_create_them_at_once(services):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        places = list(pool.map(lambda _: store.take_queue_place(services.db, "fresh-queue", 100), range(16)))
        slots = list(pool.map(lambda i: store.take_slot(services.db, "fresh-slot", f"h{i}", 3), range(16)))
    assert all(places) and store.queue_counts(services.db)["fresh-queue"] == 16
    assert sum(slots) == 3 and len(store.slot_holders(services.db, "fresh-slot")) == 3


def test_queue_size_per_workspace_counts_every_queued_job_and_frees_places_as_jobs_start(
    services, fake_workers
):
    limits_store.put(services.db, "ws:ws1", {"queuedTasksQueueSize": 2})
    first = _enqueue(services, "A", None, kind="test-noop")
    _enqueue(services, "B", None, kind="test-noop")
    with pytest.raises(TooManyRequests) as error:
        _enqueue(services, "C", None, kind="test-noop")
    assert error.value.field == "queuedTasksQueueSize"
    _enqueue(services, "C", None, kind="test-noop", workspace="ws2")  # another workspace has its own queue
    # a queued job that starts leaves the queue
    fake_workers(1)
    dispatch(services)
    assert (
        execution.claim(services, first.id, store.find(services.db, first.id)["dispatchToken"], "w")
        is not None
    )
    _enqueue(services, "C", None, kind="test-noop")


def test_a_worker_hands_its_slot_to_the_next_job_it_takes_or_gives_it_back(services, fake_workers):
    # Given one worker running A's first job, with a second job of A waiting
    fake_workers(1)
    first, second = (_enqueue(services, "A", "connA", kind="test-noop") for _ in range(2))
    document = store.find(services.db, first.id)
    job = execution.claim(services, first.id, document["dispatchToken"], "w1")
    # When it finishes keeping its worker slot, then takes the next job with that slot
    assert execution.finish(services, job, "w1", JobState.COMPLETED, keep_global_slot=True)
    kept = execution.kept_global_holder(job)
    assert store.slot_holders(services.db, GLOBAL_SLOT) == [kept]
    taken = dispatch_and_take(services, "w1", 15.0, handoff=kept)
    # Then the slot now belongs to the second job: the worker slot count never went over one
    assert taken is not None and taken.id == second.id
    assert store.slot_holders(services.db, GLOBAL_SLOT) == [taken.slot_holder]
    assert taken.slot_holder.startswith(second.id + "/")
    # And when nothing is left to take, the kept slot is given back
    assert execution.finish(services, taken, "w1", JobState.COMPLETED, keep_global_slot=True)
    assert dispatch_and_take(services, "w1", 15.0, handoff=execution.kept_global_holder(taken)) is None
    assert store.slot_holders(services.db, GLOBAL_SLOT) == []
