"""When and how an action run reaches MongoDB: written once when it ends, recorded earlier only
when something must be known before (a claim before calling out, a 202 the caller will poll)."""

from __future__ import annotations

from datetime import timedelta

from engine.domain import action_runs
from engine.domain.common import now
from engine.store import action_runs as run_store

ECHO = {
    "_id": "act_1",
    "workspaceId": "ws",
    "key": "echo",
    "integrationId": "int_1",
    "integrationKey": "demo",
    "operation": {"type": "transform", "output": {"hello": "{{ input.who }}"}},
    "inputSchema": None,
    "createdAt": now(),
}


def _started(run_id: str = "arun_1") -> dict:
    """A run as the API starts it (StartedRun.document)."""
    return {
        "_id": run_id,
        "workspaceId": "ws",
        "customerId": "c1",
        "actionKey": "echo",
        "actionId": "act_1",
        "connectionId": None,
        "state": "queued",
        "createdAt": now(),
        "input": {"who": "ada"},
        "attempts": 0,
        "action": ECHO,
    }


def _snapshot(document: dict) -> dict:
    snapshot = action_runs._snapshot(document)
    assert snapshot is not None
    return snapshot


def test_a_run_is_written_once_when_it_ends(services):
    # Given a run the API enqueued (nothing in MongoDB yet)
    document = _started()
    assert run_store.find_by_id(services.db, "arun_1") is None
    # When a worker runs its first delivery
    state = action_runs.execute_run(services, "arun_1", snapshot=_snapshot(document))
    # Then the whole log record is there, finished, and not pending
    record = run_store.find_by_id(services.db, "arun_1")
    assert state == "completed" and record["state"] == "completed"
    assert record["output"] == {"hello": "ada"} and record["input"] == {"who": "ada"}
    assert record["finishedAt"] is not None and run_store.PENDING_FIELD not in record
    assert run_store.unfinished_before(services.db, now() + timedelta(days=1), limit=10) == []


def test_the_api_records_a_run_it_stops_waiting_for_and_the_worker_finishes_it(services):
    # Given a run whose caller stopped waiting before any worker took it (202)
    document = _started()
    run = action_runs.wait_for_run(services, "arun_1", 0.05, pending=document)
    assert run.state is action_runs.RunState.QUEUED
    pending = run_store.unfinished_before(services.db, now() + timedelta(seconds=1), limit=10)
    assert [d["_id"] for d in pending] == ["arun_1"]
    # When the worker then runs it from its message
    action_runs.execute_run(services, "arun_1", snapshot=_snapshot(document))
    # Then the polled record is the finished run, no longer pending
    record = run_store.find_by_id(services.db, "arun_1")
    assert record["state"] == "completed" and run_store.PENDING_FIELD not in record
    assert action_runs.wait_for_run(services, "arun_1", 0.05, pending=document).output == {"hello": "ada"}


def test_a_wait_that_outlives_a_finished_run_returns_it_and_records_nothing_more(services):
    document = _started()
    action_runs.execute_run(services, "arun_1", snapshot=_snapshot(document))
    services.redis.flushdb()  # the signal is lost: MongoDB answers
    run = action_runs.wait_for_run(services, "arun_1", 0.05, pending=document)
    assert run.state is action_runs.RunState.COMPLETED and run.output == {"hello": "ada"}
    assert services.db.action_runs.count_documents({}) == 1


def test_a_redelivered_run_never_recorded_runs_from_its_message_and_counts_the_attempt(services):
    # Given a worker died before writing anything: its message comes back marked redelivered
    document = _started()
    # When another worker takes it
    state = action_runs.execute_run(services, "arun_1", snapshot=_snapshot(document), redelivered=True)
    # Then it ran from the message, with its attempt counted
    record = run_store.find_by_id(services.db, "arun_1")
    assert state == "completed" and record["attempts"] == 1 and record["output"] == {"hello": "ada"}


def test_a_run_interrupted_too_often_is_failed_visibly(services):
    # Given a run recorded as running that killed its worker MAX_RUN_ATTEMPTS times
    document = {
        **_started(),
        "state": "running",
        "attempts": action_runs.MAX_RUN_ATTEMPTS,
        run_store.PENDING_FIELD: now(),
    }
    run_store.insert_new(services.db, document)
    # When it is delivered once more
    assert (
        action_runs.execute_run(services, "arun_1", snapshot=_snapshot(_started()), redelivered=True) is None
    )
    # Then it is failed, says why, and is no longer pending
    record = run_store.find_by_id(services.db, "arun_1")
    assert record["state"] == "failed" and "interrupted" in record["error"]["message"]
    assert run_store.PENDING_FIELD not in record


def test_the_recovery_sweep_sees_only_old_pending_runs(services):
    old, recent = _started("arun_old"), _started("arun_new")
    run_store.insert_new(services.db, {**old, run_store.PENDING_FIELD: now() - timedelta(minutes=5)})
    run_store.insert_new(services.db, {**recent, run_store.PENDING_FIELD: now()})
    action_runs.execute_run(services, "arun_done", snapshot=_snapshot(_started("arun_done")))
    stale = run_store.unfinished_before(services.db, now() - timedelta(minutes=1), limit=10)
    assert [d["_id"] for d in stale] == ["arun_old"]


def test_a_run_claimed_after_a_long_wait_is_not_stale_while_it_runs(services, monkeypatch):
    # Given a run recorded queued 5 minutes ago (its caller got a 202), delivered again now
    document = {**_started(), run_store.PENDING_FIELD: now() - timedelta(minutes=5)}
    run_store.insert_new(services.db, document)
    seen = {}
    execute = action_runs.action_service.execute_action

    def observed(*args, **kwargs):
        # What the recovery sweep would pick while the run executes
        seen["stale"] = run_store.unfinished_before(services.db, now() - timedelta(minutes=1), limit=10)
        return execute(*args, **kwargs)

    monkeypatch.setattr(action_runs.action_service, "execute_action", observed)
    # When a worker claims and runs it
    action_runs.execute_run(services, "arun_1", snapshot=_snapshot(_started()), redelivered=True)
    # Then it was not stale while running (its pending time restarted with the claim), and it ended
    assert seen["stale"] == []
    assert run_store.find_by_id(services.db, "arun_1")["state"] == "completed"
