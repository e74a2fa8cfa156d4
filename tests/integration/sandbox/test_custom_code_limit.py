"""parallelCustomCodeRunsPerCustomer, enforced by the engine processes calling the runner.

Real Redis and MongoDB (the `services` fixture) and, where a run must really run, the real
runner (the session's `runner` fixture, 4 job spaces).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from engine.dev.servers import free_port
from engine.domain import actions
from engine.domain import connections as connection_service
from engine.domain.actions import CUSTOM_CODE_TIMEOUT_SECONDS as ACTION_CODE_TIMEOUT_SECONDS
from engine.domain.actions import execute_action, get_action
from engine.errors import TooManyRequests
from engine.flows.definition import Node
from engine.flows.executor import NodeContext, NodeFailed
from engine.flows.nodes import (
    CUSTOM_CODE_TIMEOUT_SECONDS,
    RUNNER_BUSY_WAIT_SECONDS,
    RUNNER_HTTP_GRACE_SECONDS,
    run_python,
)
from engine.jobs.model import Job, JobState
from engine.limits import custom_code
from engine.limits.custom_code import LIMIT_NAME, custom_code_slot, holders_key, in_flight, released_key
from engine.limits.service import clear_cache
from engine.services import Services
from engine.store import limits as limits_store
from tests.conftest import REPO_ROOT
from tests.factories import create_action, create_connection, create_integration, upload_demo_connector
from tests.integration.api.conftest import DEMO_API_KEY, client, demo, tenant  # noqa: F401 - fixtures

WORKSPACE = "ws_limits"
SLEEP_CODE = """
import time

def run(input, ctx):
    started = time.time()
    time.sleep(input["seconds"])
    return {"start": started, "end": time.time()}
"""


def with_limits(services: Services, runner_url: str, *, enabled: bool = True) -> Services:
    config = dataclasses.replace(services.config, enable_limits=enabled, custom_code_runner_uri=runner_url)
    return dataclasses.replace(services, config=config)


@pytest.fixture
def limited(services) -> Services:
    """ENABLE_LIMITS on; no runner (for the tests of the slots alone)."""
    clear_cache()
    return with_limits(services, "http://127.0.0.1:9")


def set_customer_limit(services: Services, customer_id: str, value: int) -> None:
    limits_store.put(services.db, f"cus:{customer_id}", {LIMIT_NAME: value})
    clear_cache()


def flow_context(services: Services, customer_id: str) -> NodeContext:
    job = Job(
        id=f"job-{customer_id}-{time.monotonic_ns()}",
        kind="flow-run",
        state=JobState.RUNNING,
        workspace_id=WORKSPACE,
        customer_id=customer_id,
        connection_id=None,
        payload={},
        launched_by="test",
    )
    node = Node("code", "run-python", {"code": SLEEP_CODE})
    return NodeContext(
        job.id, node, {}, {}, extra={"services": services, "workspace_id": WORKSPACE, "job": job}
    )


def run_node(services: Services, customer_id: str, seconds: float) -> tuple[dict[str, Any], list[str]]:
    """One run-python node invocation as a flow run does it; (its output, its log lines)."""
    ctx = flow_context(services, customer_id)
    [output] = run_python(ctx.node, {"seconds": seconds}, ctx)
    return output, ctx.logs


def run_in_threads(count: int, target) -> list[Any]:
    """Start `count` threads of target(index) at once; their results (or exceptions) in order."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def work(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except Exception as error:  # noqa: BLE001 - reported to the test
            results[index] = error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


class HolderWatch:
    """Polls a customer's live slot holders in Redis from another thread; keeps the maximum seen."""

    def __init__(self, services: Services, customer_id: str):
        self.services, self.customer_id, self.peak = services, customer_id, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, in_flight(self.services, self.customer_id))
            time.sleep(0.01)

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def test_one_customer_never_has_more_than_the_limit_in_flight_and_another_is_not_blocked(services, runner):
    limited = with_limits(services, runner.url)
    clear_cache()
    outcomes: list[Any] = []

    def other_customer() -> None:
        time.sleep(0.3)  # while the first customer's runs queue for their 2 slots
        outcomes.append(run_node(limited, "cus_b", 0))

    with HolderWatch(limited, "cus_a") as watch:
        other = threading.Thread(target=other_customer)
        other.start()
        results = run_in_threads(5, lambda _: run_node(limited, "cus_a", 0.8))
        other.join(timeout=30)
    assert all(isinstance(r, tuple) for r in results), results
    intervals = [(output["start"], output["end"]) for output, _ in results]
    # Measured inside the runner: two of the customer's runs overlapped, never three.
    assert max_overlap(intervals) == 2
    assert watch.peak == 2  # the holders in Redis agree
    assert sum(any("waited" in line for line in logs) for _, logs in results) == 3  # 2 started at once
    # The other customer's run did not queue behind the first customer's backlog.
    [(b_output, b_logs)] = outcomes
    assert b_output["end"] < max(start for start, _ in intervals)
    assert not any("waited" in line for line in b_logs)
    assert in_flight(limited, "cus_a") == 0


def test_without_enable_limits_there_is_no_limit(services, runner):
    unlimited = with_limits(services, runner.url, enabled=False)
    results = run_in_threads(3, lambda _: run_node(unlimited, "cus_a", 1.0))
    assert all(isinstance(r, tuple) for r in results), results
    assert max_overlap([(output["start"], output["end"]) for output, _ in results]) == 3
    assert services.redis.keys("{cc:*") == []


def test_a_flow_node_that_gets_no_slot_in_time_fails_naming_the_limit(services, runner, monkeypatch):
    limited = with_limits(services, runner.url)
    set_customer_limit(limited, "cus_a", 1)
    monkeypatch.setattr(custom_code, "SLOT_WAIT_SECONDS", 0.3)
    with custom_code_slot(limited, WORKSPACE, "cus_a"):  # another process's run
        with pytest.raises(NodeFailed) as failure:
            run_node(limited, "cus_a", 0)
    assert failure.value.type == "custom_code_limit"
    assert LIMIT_NAME in failure.value.message
    output, _ = run_node(limited, "cus_a", 0)  # the slot is free again
    assert output["end"] >= output["start"]


def test_a_python_action_without_a_slot_fails_with_429(services, runner, client, tenant, demo, monkeypatch):  # noqa: F811
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    created = create_connection(client, tenant.customer, {"baseUrl": demo.url, "apiKey": DEMO_API_KEY})
    create_action(client, tenant.admin, "nap", {"type": "python", "code": SLEEP_CODE})
    limited = with_limits(services, runner.url)
    connection = connection_service.get_connection_by_id(limited, created["id"])
    action = get_action(limited, tenant.workspace.id, "nap")
    set_customer_limit(limited, connection.customer_id, 1)
    monkeypatch.setattr(custom_code, "SLOT_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(actions, "CUSTOM_CODE_TIMEOUT_SECONDS", 10.0)  # the session runner's most
    with custom_code_slot(limited, tenant.workspace.id, connection.customer_id):
        refused = execute_action(limited, action, connection, {"seconds": 0})
    assert not refused.ok
    assert refused.error is not None
    assert refused.error["status"] == 429
    assert refused.error["field"] == LIMIT_NAME
    done = execute_action(limited, action, connection, {"seconds": 0})
    assert done.ok, done.error
    assert in_flight(limited, connection.customer_id) == 0


def test_a_release_wakes_a_waiter_at_once(limited, monkeypatch):
    # Polling alone would notice the free slot only after RELEASE_POLL_SECONDS.
    monkeypatch.setattr(custom_code, "RELEASE_POLL_SECONDS", 3.0)
    set_customer_limit(limited, "cus_a", 1)
    acquired_at: list[float] = []

    def waiter() -> None:
        with custom_code_slot(limited, WORKSPACE, "cus_a", wait_seconds=10) as waited:
            acquired_at.append(time.monotonic())
            assert waited > 0

    with custom_code_slot(limited, WORKSPACE, "cus_a"):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.5)
    released_at = time.monotonic()
    thread.join(timeout=10)
    assert acquired_at and acquired_at[0] - released_at < 1.0


def test_the_slot_is_released_when_the_run_raises(limited):
    with pytest.raises(RuntimeError):
        with custom_code_slot(limited, WORKSPACE, "cus_a"):
            assert in_flight(limited, "cus_a") == 1
            raise RuntimeError("the runner call failed")
    assert in_flight(limited, "cus_a") == 0


def test_limit_zero_refuses_at_once_naming_the_limit(limited):
    set_customer_limit(limited, "cus_a", 0)
    started = time.monotonic()
    with pytest.raises(TooManyRequests) as refused:
        with custom_code_slot(limited, WORKSPACE, "cus_a"):
            pass
    assert refused.value.field == LIMIT_NAME
    assert time.monotonic() - started < 1.0


HOLD_AND_DIE = """
import os, time
from engine.config import load_config
from engine.limits.custom_code import custom_code_slot
from engine.services import Services

services = Services.from_config(load_config(dict(os.environ)))
with custom_code_slot(services, "ws_limits", "cus_a", holder_ttl_seconds=2.0):
    with custom_code_slot(services, "ws_limits", "cus_a", holder_ttl_seconds=2.0):
        print("holding", flush=True)
        time.sleep(60)
"""


def test_slots_of_a_process_that_died_are_dropped_after_their_ttl(limited, engine_env):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_DIE],
        cwd=REPO_ROOT,
        env={**engine_env, "ENABLE_LIMITS": "1", "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    assert in_flight(limited, "cus_a") == 2  # both of the dead process's slots, no release
    with pytest.raises(TooManyRequests):
        with custom_code_slot(limited, WORKSPACE, "cus_a", wait_seconds=0.2):
            pass
    with custom_code_slot(limited, WORKSPACE, "cus_a", wait_seconds=5) as waited:
        assert 0 < waited < 5
        assert in_flight(limited, "cus_a") == 1  # only this one: the dead holders were dropped


def test_redis_unreachable_lets_the_run_go_ahead_with_a_warning(limited, caplog):
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    offline = dataclasses.replace(limited, redis=down)
    with caplog.at_level(logging.WARNING, logger="engine.limits.custom_code"):
        with custom_code_slot(offline, WORKSPACE, "cus_a") as waited:
            assert waited == 0.0
    assert f"runs without {LIMIT_NAME}" in caplog.text
    down.close()


def test_keys_share_the_customers_cluster_slot_and_outlive_every_hold():
    assert key_slot(holders_key("cus_a").encode()) == key_slot(released_key("cus_a").encode())
    longest_node = RUNNER_BUSY_WAIT_SECONDS + CUSTOM_CODE_TIMEOUT_SECONDS + RUNNER_HTTP_GRACE_SECONDS
    longest_action = ACTION_CODE_TIMEOUT_SECONDS + 5
    assert custom_code.SLOT_HOLDER_TTL_SECONDS >= 1.5 * max(longest_node, longest_action)
