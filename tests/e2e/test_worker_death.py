"""Execution on real queued workers: worker death (SIGKILL), stop, and the time and memory limits."""

from __future__ import annotations

import re

import pytest
import requests

from engine.jobs.model import JobState
from engine.jobs.service import enqueue_job, get_job, request_stop
from tests.e2e.jobhelpers import events, kill_tree, start_worker, wait_finished, wait_for

pytestmark = pytest.mark.slow


def _enqueue(services, kind: str, **payload):
    return enqueue_job(
        services,
        kind=kind,
        workspace_id="ws1",
        customer_id="cus1",
        connection_id=None,
        payload=payload,
        launched_by="api",
    )


def test_sigkilled_worker_mid_job_the_job_completes_once_on_a_new_worker(services, engine_env, start_engine):
    # Given a job running on a queued worker
    worker = start_worker(start_engine, engine_env)
    job = _enqueue(services, "test-sleep", seconds=3)
    wait_for(lambda: events(services, job.id, "start"), 30, what="the job to start")
    # When the worker (main process and pool child) is SIGKILLed, and a new worker starts
    kill_tree(worker)
    assert get_job(services, job.id).state is JobState.RUNNING
    start_worker(start_engine, engine_env)
    # Then, once the lease expires and the reconciler requeues it, the job completes exactly once
    final = wait_finished(services, job.id, 60, reconcile_every=1.0)
    assert final.state is JobState.COMPLETED, final
    assert final.attempts == 2
    assert len(events(services, job.id, "end")) == 1
    assert [e["attempt"] for e in events(services, job.id, "start")] == [1, 2]
    print(
        f"\nrecovered after SIGKILL: attempts={final.attempts}, "
        f"total {(final.finished_at - final.created_at).total_seconds():.1f} s"
    )


def _busy(worker) -> int:
    text = requests.get(worker.url + "/prometheus/queued-tasks", timeout=5).text
    return int(re.search(r"^queued_tasks_worker_busy (\d+)$", text, re.M).group(1))


def test_stop_a_running_job_cooperatively_and_by_force(services, engine_env, start_engine):
    worker = start_worker(start_engine, engine_env)
    assert _busy(worker) == 0
    polite = _enqueue(services, "test-sleep", seconds=60)
    wait_for(lambda: events(services, polite.id, "start"), 30, what="start")
    assert _busy(worker) == 1  # queued_tasks_worker_busy while a job runs
    request_stop(services, polite.id)
    stopped = wait_finished(services, polite.id, 5)
    assert stopped.state is JobState.STOPPED and events(services, polite.id, "stopped")

    stubborn = _enqueue(services, "test-sleep", seconds=60, ignoreStop=True)
    wait_for(lambda: events(services, stubborn.id, "start"), 30, what="start")
    request_stop(services, stubborn.id)
    assert wait_finished(services, stubborn.id, 15).state is JobState.STOPPED
    # the worker's pool replaced the ended process and takes the next job
    after = _enqueue(services, "test-sleep", seconds=0.1)
    assert wait_finished(services, after.id, 30).state is JobState.COMPLETED
    wait_for(lambda: _busy(worker) == 0, 10, what="the worker to report free")


def test_time_limit_fails_the_job_and_the_worker_takes_the_next(services, engine_env, start_engine):
    start_worker(start_engine, engine_env, MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS="2")
    job = _enqueue(services, "test-sleep", seconds=60, ignoreStop=True)
    final = wait_finished(services, job.id, 30)
    assert final.state is JobState.FAILED and final.error["type"] == "time_limit", final.error
    assert "MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS" in final.error["message"]
    nxt = _enqueue(services, "test-sleep", seconds=0.1)
    assert wait_finished(services, nxt.id, 30).state is JobState.COMPLETED


def test_memory_limit_fails_the_job_and_the_worker_takes_the_next(services, engine_env, start_engine):
    start_worker(start_engine, engine_env, MAX_QUEUED_TASKS_MEMORY_MB="300")
    job = _enqueue(services, "test-allocate", mb=800, hold=10)
    final = wait_finished(services, job.id, 30)
    assert final.state is JobState.FAILED and final.error["type"] == "memory_limit", final.error
    assert not events(services, job.id, "end")
    nxt = _enqueue(services, "test-sleep", seconds=0.1)
    assert wait_finished(services, nxt.id, 30).state is JobState.COMPLETED
