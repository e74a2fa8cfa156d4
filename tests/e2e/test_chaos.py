"""Chaos (issue 7, domain.md §10): Redis is only a cache, and a worker may die at any moment.

500 flow runs of 5 customers are queued through the API of real processes (API, two queued
workers, one orchestrator running recovery) on a Redis of this test's own. While they run,
Redis is erased (FLUSHALL) at ~20 % and ~60 % progress, and at ~40 % one queued worker is
SIGKILLed (its main process and pool child, mid-run) and replaced. Every run must end
`completed`, no run may be executed twice at the same time (by the recorder the flow's nodes
call, and by the engine's own attempts), and the number of re-executions is reported.
"""

from __future__ import annotations

import itertools
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests

from engine.config import load_config
from engine.dev.servers import free_port, start_redis
from engine.domain import tenancy
from engine.jobs.channel import QUEUED_QUEUE
from engine.services import Services
from tests.conftest import make_env
from tests.e2e.chaoshelpers import RecorderServer, chaos_flow, overlaps
from tests.e2e.jobhelpers import kill_tree
from tests.factories import create_workspace, customer_token, demo_connector_zip, workspace_token

pytestmark = pytest.mark.slow

RUNS = 500
CUSTOMERS = 5
WORK_MS = 50
"""The `work` node's time in the recorder: a run is mid-flight for at least this long."""
ENQUEUE_THREADS = 6
FLUSH_AT = (0.2, 0.6)
KILL_AT = 0.4
FINISH_TIMEOUT_SECONDS = 240.0
"""From the first enqueue until all runs completed (lease expiry 15 s + recovery tick 5 s per
lost message or dead worker, on a shared 2-core machine)."""
KILL_WAIT_FOR_MID_RUN_SECONDS = 10.0
FLUSH_WAIT_FOR_MESSAGE_SECONDS = 10.0
QUEUED_WORKER = {"IS_API": "0", "IS_QUEUED_TASKS_WORKER": "1"}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(response: requests.Response, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:2000])
    return response.json() if response.content else None


@dataclass
class Timeline:
    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)
    chaos_at: list[tuple[datetime, str]] = field(default_factory=list)
    """Wall-clock time of each FLUSHALL and SIGKILL (the jobs' finishedAt are wall-clock too)."""

    def note(self, what: str, *, chaos: bool = False) -> None:
        self.events.append((time.monotonic() - self.started, what))
        if chaos:
            self.chaos_at.append((datetime.now(UTC), what))

    def text(self) -> str:
        return "\n".join(f"  {t:7.1f} s  {what}" for t, what in self.events)


def _setup_tenant(api: str, env: dict[str, str], recorder_url: str) -> tuple[str, list[tuple[str, str]]]:
    """A workspace with the demo connector and the chaos flow; CUSTOMERS customers, each with a
    connection and an instance. Returns (admin token, [(customer token, instance id)])."""
    services = Services.from_config(load_config(env))
    try:
        tenancy.clear_caches()
        workspace, secret = create_workspace(services)
    finally:
        services.close()
    admin = workspace_token(workspace, secret)
    _ok(
        requests.post(
            f"{api}/connectors",
            headers=_h(admin),
            timeout=30,
            files={"file": ("demo.zip", demo_connector_zip(), "application/zip")},
        ),
        201,
    )
    _ok(
        requests.post(
            f"{api}/integrations", headers=_h(admin), json={"key": "demo", "connectorKey": "demo"}, timeout=10
        ),
        201,
    )
    _ok(requests.post(f"{api}/flows", headers=_h(admin), json=chaos_flow("chaos", WORK_MS), timeout=10), 201)
    customers = []
    for number in range(CUSTOMERS):
        token = customer_token(workspace, secret, f"chaos-customer-{number}")
        connection = _ok(
            requests.post(
                f"{api}/connections",
                headers=_h(token),
                timeout=10,
                json={"integrationKey": "demo", "credentials": {"baseUrl": recorder_url, "apiKey": "unused"}},
            ),
            201,
        )
        instance = _ok(
            requests.post(
                f"{api}/flow-instances",
                headers=_h(token),
                timeout=10,
                json={
                    "flowId": "chaos",
                    "connectionId": connection["id"],
                    "parameters": {"recorder": recorder_url},
                },
            ),
            201,
        )
        customers.append((token, instance["id"]))
    return admin, customers


_FLUSH_IF_IN_FLIGHT = """
if redis.call('LLEN', KEYS[1]) > 0 then redis.call('FLUSHALL') return 1 end
return 0
"""
"""FLUSHALL exactly when an execute message waits in the queued queue (dispatched, not yet taken)."""


def _flush_with_message_in_flight(flusher: redis.Redis) -> bool:
    """FLUSHALL at a moment a dispatched message is in Redis (so it is lost), else after a while anyway."""
    script = flusher.register_script(_FLUSH_IF_IN_FLIGHT)
    deadline = time.monotonic() + FLUSH_WAIT_FOR_MESSAGE_SECONDS
    while time.monotonic() < deadline:
        if script(keys=[QUEUED_QUEUE]):
            return True
    flusher.flushall()
    return False


def _kill_mid_run(worker, jobs, recorder, timeline: Timeline) -> str | None:
    """SIGKILL the worker's process tree while it runs a job between its begin and end nodes.

    Returns the job killed mid-run: one whose run had begun and, once the process was dead, had
    still not reached its end node (a job seen mid-run may finish in the instant before the kill)."""
    owner_prefix = f"{socket.gethostname()}-{worker.process.pid}-"
    deadline = time.monotonic() + KILL_WAIT_FOR_MID_RUN_SECONDS
    victim: tuple[str, str] | None = None
    while time.monotonic() < deadline and victim is None:
        open_keys = recorder.open_keys()
        for document in jobs.find({"state": "running"}, {"leaseOwner": 1, "payload.input.key": 1}):
            key = document["payload"]["input"]["key"]
            if (document.get("leaseOwner") or "").startswith(owner_prefix) and key in open_keys:
                victim = (document["_id"], key)
                break
        else:
            time.sleep(0.005)
    kill_tree(worker)
    killed_mid_run = victim[0] if victim and victim[1] in recorder.open_keys() else None
    timeline.note(
        f"SIGKILL queued worker pid {worker.process.pid} "
        f"({'mid-run of ' + killed_mid_run if killed_mid_run else 'not caught mid-run'})",
        chaos=True,
    )
    return killed_mid_run


def _pauses(jobs, chaos_at: list[tuple[datetime, str]]) -> list[str]:
    """For each chaos event: how long until the next run completed, and the longest pause between
    two completions in the minute after it (the system returning to normal)."""
    finished = sorted(d["finishedAt"] for d in jobs.find({"kind": "flow-run"}, {"finishedAt": 1}))
    lines = []
    for at, what in chaos_at:
        after = [t for t in finished if at <= t <= at + timedelta(seconds=60)]
        if not after:
            lines.append(f"  after {what}: no completion within 60 s")
            continue
        gaps = [(b - a).total_seconds() for a, b in zip([at, *after], after, strict=False)]
        lines.append(
            f"  after {what}: next completion in {gaps[0]:.2f} s, longest pause in the next "
            f"60 s {max(gaps):.2f} s, {len(after)} completions in those 60 s"
        )
    return lines


def test_500_runs_survive_two_flushalls_and_a_sigkilled_worker(stack, test_id, start_engine, tmp_path):
    own_redis = start_redis(free_port(), log_path=tmp_path / "redis.log")
    recorder_server = RecorderServer()
    services = None
    procs: list = []
    try:
        env = make_env(stack, test_id, REDIS_URI=f"redis://127.0.0.1:{own_redis.port}/0")
        api_proc = start_engine(env)
        workers = [start_engine({**env, **QUEUED_WORKER}) for _ in range(2)]
        orchestrator = start_engine({**env, "IS_API": "0", "IS_ORCHESTRATOR": "1"})
        procs += [api_proc, *workers, orchestrator]
        for proc in procs:
            proc.wait_healthy()
        api = api_proc.url
        recorder = recorder_server.recorder
        admin, customers = _setup_tenant(api, env, recorder_server.url)
        services = Services.from_config(load_config(env))
        jobs = services.db["jobs"]
        flusher = redis.Redis(port=own_redis.port)

        # When: 500 runs are queued through the API, spread over the customers ...
        timeline = Timeline()
        session = requests.Session()

        accepted = itertools.count(1)

        def enqueue(number: int) -> str:
            token, instance_id = customers[number % CUSTOMERS]
            queued = _ok(
                requests.post(
                    f"{api}/flow-instances/{instance_id}/run",
                    headers=_h(token),
                    timeout=30,
                    json={"input": {"key": f"run-{number:03d}"}},
                ),
                202,
            )
            if next(accepted) == RUNS:
                timeline.note(f"all {RUNS} runs queued (202)")
            return queued["id"]

        pool = ThreadPoolExecutor(ENQUEUE_THREADS)
        enqueued = pool.map(enqueue, range(RUNS))

        # ... and, while they run, Redis is erased twice and a worker is SIGKILLed once.
        chaos = sorted([(FLUSH_AT[0], "flush"), (KILL_AT, "kill"), (FLUSH_AT[1], "flush")])
        victim = None
        deadline = timeline.started + FINISH_TIMEOUT_SECONDS
        completed = 0
        while time.monotonic() < deadline:
            completed = jobs.count_documents({"kind": "flow-run", "state": "completed"})
            failed = jobs.count_documents({"kind": "flow-run", "state": {"$in": ["failed", "stopped"]}})
            assert failed == 0, list(jobs.find({"state": {"$in": ["failed", "stopped"]}}, {"error": 1}))[:5]
            if chaos and completed >= chaos[0][0] * RUNS:
                _, what = chaos.pop(0)
                if what == "flush":
                    lost = _flush_with_message_in_flight(flusher)
                    timeline.note(
                        f"FLUSHALL at {completed} completed"
                        f"{' with a dispatched message in Redis' if lost else ''}",
                        chaos=True,
                    )
                else:
                    timeline.note(f"kill at {completed} completed")
                    victim = _kill_mid_run(workers[0], jobs, recorder, timeline)
                    workers[0] = start_engine({**env, **QUEUED_WORKER})
                    procs.append(workers[0])
                    workers[0].wait_healthy()
                    timeline.note("replacement worker healthy")
            if completed >= RUNS:
                break
            time.sleep(0.1)
        run_ids = list(enqueued)
        pool.shutdown()
        wall_seconds = time.monotonic() - timeline.started
        timeline.note(f"{completed} of {RUNS} completed")

        # Then: all 500 completed (per the API) ...
        states: dict[str, int] = {}
        for token, instance_id in customers:
            listed = _ok(
                session.get(
                    f"{api}/flow-runs",
                    headers=_h(token),
                    timeout=60,
                    params={"flowInstanceId": instance_id, "limit": 1000},
                ),
                200,
            )
            for run in listed["items"]:
                states[run["state"]] = states.get(run["state"], 0) + 1
        assert len(set(run_ids)) == RUNS
        assert states == {"completed": RUNS}, (states, timeline.text(), workers[1].logs()[-3000:])

        # ... none was executed twice at the same time, and every run began and ended at least once.
        runs, unknown = recorder.snapshot()
        assert not unknown, unknown[:5]
        assert sorted(runs) == sorted(f"run-{n:03d}" for n in range(RUNS))
        assert all(any(e.ended for e in executions) for executions in runs.values())
        double = overlaps(runs)
        assert double == [], double[:5]
        attempts = {d["_id"]: d.get("attempts", 0) for d in jobs.find({"kind": "flow-run"}, {"attempts": 1})}
        assert len(attempts) == RUNS and min(attempts.values()) >= 1

        executions = sum(len(e) for e in runs.values())
        re_executed = sorted(key for key, e in runs.items() if len(e) > 1)
        engine_retries = sum(a - 1 for a in attempts.values())
        if victim:  # the run killed mid-flight ran again, and ended
            assert (
                attempts[victim] >= 2
                and len(runs[jobs.find_one({"_id": victim})["payload"]["input"]["key"]]) >= 2
            )
        pauses = _pauses(jobs, timeline.chaos_at)
        print(
            f"\nchaos: {RUNS} runs of {CUSTOMERS} customers, 2 queued workers, 2 FLUSHALLs, 1 SIGKILL\n"
            f"{timeline.text()}\n"
            f"  all {RUNS} completed in {wall_seconds:.1f} s wall time (from the first enqueue)\n"
            f"  re-executions (recorder begins - {RUNS}): {executions - RUNS} "
            f"(runs: {', '.join(re_executed) or 'none'})\n"
            f"  engine retries (sum of attempts - 1): {engine_retries}; concurrent double executions: 0\n"
            + "\n".join(pauses)
        )
    finally:
        for proc in procs:  # before their Redis goes away (no reconnect noise in their logs)
            proc.stop()
        if services is not None:
            services.mongo.drop_database(services.config.database_name)
            services.close()
        recorder_server.stop()
        own_redis.stop()
