"""The API's wait for a run: the Redis signal is a shortcut, MongoDB the truth."""

from __future__ import annotations

import json
import time

from engine.domain import action_runs
from engine.store import action_runs as run_store


def _insert(services, state: str) -> str:
    from engine.domain.common import now

    run_store.insert_new(
        services.db,
        {
            "_id": "arun_1",
            "workspaceId": "ws",
            "actionKey": "a",
            "state": state,
            "createdAt": now(),
            "attempts": 1,
            "output": {"x": 1},
            **({"pendingSince": now()} if state in ("queued", "running") else {}),
        },
    )
    return "arun_1"


def test_finished_run_is_found_in_mongo_without_any_signal(services):
    # Given a run finished while Redis was erased (no signal will ever come)
    run_id = _insert(services, "completed")
    services.redis.flushdb()
    started = time.monotonic()
    # When the API waits for it
    run = action_runs.wait_for_run(services, run_id, 5.0)
    # Then MongoDB answers within one blocking slice
    assert run.state is action_runs.RunState.COMPLETED and run.output == {"x": 1}
    assert time.monotonic() - started < run_store.MAX_BLOCK_SECONDS + 0.5


def test_unfinished_run_comes_back_as_is_after_the_timeout(services):
    run_id = _insert(services, "queued")
    started = time.monotonic()
    run = action_runs.wait_for_run(services, run_id, 0.3)
    assert run.state is action_runs.RunState.QUEUED and time.monotonic() - started < 1.5


def test_the_message_and_the_first_wait_share_one_round_trip(services):
    # Given a run whose signal is already there when its message is pushed (a worker that is fast)
    run_store.signal_done(services.redis, "arun_2", '{"_id": "arun_2"}')
    # When the API pushes the message and waits in the same pipeline
    payload = run_store.push_then_wait_signal(services.redis, "instant", "the message", "arun_2", 5.0)
    # Then the message is on the queue and the signal came back with it
    assert services.redis.lrange("instant", 0, -1) == [b"the message"]
    assert payload == b'{"_id": "arun_2"}'
    # and with no signal, the wait ends after its slice with nothing
    started = time.monotonic()
    assert run_store.push_then_wait_signal(services.redis, "instant", "another", "arun_3", 0.2) is None
    assert time.monotonic() - started < 1.0 and services.redis.llen("instant") == 2


def test_a_run_answered_during_the_first_wait_is_not_read_from_mongo(services):
    run_id = _insert(services, "queued")  # MongoDB still says queued: the signal is newer
    signal = run_store.find_by_id(services.db, run_id)
    finished = action_runs.ActionRun.from_document({**signal, "state": "completed", "output": {"y": 2}})
    run = action_runs.wait_for_run(services, run_id, 5.0, signal=json.dumps(finished.to_signal()).encode())
    assert run.state is action_runs.RunState.COMPLETED and run.output == {"y": 2}


def test_after_an_empty_first_slice_mongodb_is_read_at_once(services):
    # Given a run that finished while its signal was lost, and a first slice of the wait that
    # came back empty (start_run's pipelined wait)
    run_id = _insert(services, "completed")
    started = time.monotonic()
    # When the wait goes on
    run = action_runs.wait_for_run(services, run_id, 5.0, signal=b"")
    # Then MongoDB answers without blocking on the signal for another slice
    assert run.state is action_runs.RunState.COMPLETED
    assert time.monotonic() - started < run_store.MAX_BLOCK_SECONDS / 2
