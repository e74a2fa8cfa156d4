"""The API's wait for a run: the Redis signal is a shortcut, MongoDB the truth."""

from __future__ import annotations

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
