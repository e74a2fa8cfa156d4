"""POST /actions/{key}/run of a no-op action, beside raw Celery's round trip on the same Redis.

    .venv/bin/python -m bench.bench_actions [--quick]

Starts the servers, one API process and one then two instant workers (`python -m engine run`).
The action is a `transform` (no app call), so what is measured is the engine's own path: auth,
input check, the Celery message that carries the run, the worker's one write of the run record
in MongoDB, the Redis completion signal and the API's answer. The baseline, in the same run against the same
Redis and workers: send the `instant.signal` task (it only LPUSHes a key) and BLPOP that key.

Figures: round-trip p50 and p99 (sequential requests) and throughput (CONCURRENCY clients; the
engine and the baseline alternate in slices, so a change of the machine's speed weighs on both). The
HTTP client is bench.http_client's lean one (a kept-alive connection per client, a request prepared
once, as wrk does): about 0.1 ms of CPU per call where urllib3 spent 0.6 ms on the same 2 cores as
the engine, which the engine would pay for in throughput. The CPU per run is shown by process,
the client's share included.
Targets (issue 3): throughput >= half raw Celery's; p50 overhead < 10 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import redis
import requests

from bench.common import Stack, describe_machine, median, percentile, row, start_engine
from bench.http_client import LeanHttpClient

CONCURRENCY = 8
"""Concurrent clients in the throughput measurement."""
SEQUENTIAL_QUICK, SEQUENTIAL_FULL = 60, 300
THROUGHPUT_SECONDS_QUICK, THROUGHPUT_SECONDS_FULL = 3.0, 10.0
"""Measured time of each side's throughput."""
THROUGHPUT_SLICES = 4
"""Each side's throughput time is cut into this many slices, alternated with the other side's."""
WARMUP_REQUESTS = 10
WARMUP_SECONDS = 1.0
"""Concurrent load before measuring with a new worker count, so every worker has run tasks (its
first one opens connections and fills caches: tens of ms, which would land in the p99)."""
SIGNAL_WAIT_SECONDS = 30


def _setup(api_url: str, env: dict[str, str]) -> str:
    """Workspace, demo connector, integration and the no-op action; returns a customer token."""
    from engine.auth.tokens import mint_platform_admin_token, mint_workspace_token
    from examples.connectors.build import build_demo_connector_zip

    admin = {"Authorization": "Bearer " + mint_platform_admin_token(env["SECRET"])}
    workspace = requests.post(
        api_url + "/workspaces", json={"key": "bench"}, headers=admin, timeout=30
    ).json()
    ws_admin = {"Authorization": "Bearer " + mint_workspace_token("bench", workspace["secret"])}
    response = requests.post(
        api_url + "/connectors",
        headers=ws_admin,
        timeout=30,
        files={"file": ("demo.zip", build_demo_connector_zip())},
    )
    response.raise_for_status()
    requests.post(
        api_url + "/integrations", json={"key": "demo", "connectorKey": "demo"}, headers=ws_admin, timeout=30
    ).raise_for_status()
    requests.post(
        api_url + "/actions",
        headers=ws_admin,
        timeout=30,
        json={
            "key": "noop",
            "integrationKey": "demo",
            "operation": {"type": "transform", "output": {"ok": True}},
        },
    ).raise_for_status()
    customer = mint_workspace_token("bench", workspace["secret"], customer_id="bench-customer")
    # A connected customer, as in real use (the no-op never calls the app, so no app is running).
    requests.post(
        api_url + "/connections",
        headers={"Authorization": "Bearer " + customer},
        timeout=30,
        json={"integrationKey": "demo", "credentials": {"baseUrl": "http://127.0.0.1:9", "apiKey": "unused"}},
    ).raise_for_status()
    return customer


class ActionCall:
    """`call(slot)`: one run of the no-op action on the kept-alive connection of client `slot`.
    Connections are kept across calls and throughput slices until `close()`."""

    def __init__(self, api_url: str, token: str) -> None:
        self._api_url = api_url
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        self._request = LeanHttpClient(api_url).prepare(
            "POST", "/actions/noop/run", json.dumps({"input": {}}).encode(), headers
        )
        self._clients: dict[int, LeanHttpClient] = {}

    def __call__(self, slot: int) -> None:
        client = self._clients.get(slot)
        if client is None:
            client = self._clients[slot] = LeanHttpClient(self._api_url)
        status, answer = client.send(self._request)
        if status != 200:
            raise RuntimeError(f"run answered {status}: {answer[:300]!r}")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class CeleryCall:
    """`call(slot)`: one raw Celery round trip (send the task, BLPOP the key it pushes to), client
    `slot` waiting on a Redis connection of its own, kept until `close()`."""

    def __init__(self, env: dict[str, str]) -> None:
        from engine.config import load_config
        from tasks.app import celery_app, configure_celery

        configure_celery(celery_app, load_config({**env, "IS_API": "1"}))
        self._app = celery_app
        self._redis_uri = env["REDIS_URI"]
        self._clients: dict[int, redis.Redis] = {}

    def __call__(self, slot: int) -> None:
        client = self._clients.get(slot)
        if client is None:
            client = self._clients[slot] = redis.Redis.from_url(self._redis_uri)
        key = f"bench-signal:{uuid.uuid4().hex}"
        self._app.send_task("instant.signal", args=[key])
        if client.blpop([key], timeout=SIGNAL_WAIT_SECONDS) is None:
            raise RuntimeError("raw Celery round trip timed out")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _latencies(call: Callable[[int], None], count: int) -> list[float]:
    for _ in range(WARMUP_REQUESTS):
        call(0)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call(0)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


@dataclass
class Side:
    """One side's share of an interleaved throughput measurement."""

    runs: float = 0.0
    seconds: float = 0.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU time (user + system) spent by each watched process while this side ran."""

    @property
    def rate(self) -> float:
        """Runs per second."""
        return self.runs / self.seconds

    def cpu_ms_per_run(self) -> dict[str, float]:
        """Milliseconds of CPU per run, by process."""
        return {name: spent / self.runs * 1000 for name, spent in self.cpu_seconds.items()}


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of the processes pids and their live children, in seconds; this
    process alone, without its children (the servers and engine processes it started)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            total += sum(process.cpu_times()[:2])
            if pid == os.getpid():
                continue
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
    return total


def _interleaved_throughput(
    first, second, seconds: float, slices: int, processes: dict[str, list[int]]
) -> tuple[Side, Side]:
    """Throughput of two calls over `seconds` each, measured in `slices` alternating slices in
    ABBA order (A B B A A B ...): a drift of the shared machine's speed during the measurement
    then weighs on both alike instead of on whichever ran second. Each side is charged with the
    CPU time of `processes` (name -> pids) while it ran, and of this process as "client"."""
    sides = (Side(), Side())
    watched = {**processes, "client": [os.getpid()]}
    for index in range(slices * 2):
        which = (index + index // 2) % 2  # 0 1 1 0 0 1 1 0 ...
        side = sides[which]
        before = {name: _cpu_seconds(pids) for name, pids in watched.items()}
        started = time.perf_counter()
        rate = _throughput((first, second)[which], seconds / slices)
        elapsed = time.perf_counter() - started
        side.runs += rate * elapsed
        side.seconds += elapsed
        for name, pids in watched.items():
            side.cpu_seconds[name] = side.cpu_seconds.get(name, 0.0) + _cpu_seconds(pids) - before[name]
    return sides


def _cpu_note(side: Side) -> str:
    """The milliseconds of CPU per run by process, as text: API 1.01, workers 1.80, ..."""
    return ", ".join(f"{name} {spent:.2f}" for name, spent in side.cpu_ms_per_run().items())


def _throughput(call: Callable[[int], None], seconds: float) -> float:
    """Calls per second of CONCURRENCY threads calling `call(their index)` in a loop for `seconds`."""
    done = [0] * CONCURRENCY
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        try:
            while time.perf_counter() < deadline:
                call(index)
                done[index] += 1
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"throughput run failed: {errors[0]}")
    return sum(done) / (time.perf_counter() - started)


def run(quick: bool) -> list[dict]:
    """Measure with 1 and 2 instant workers; return the result rows."""
    count = SEQUENTIAL_QUICK if quick else SEQUENTIAL_FULL
    seconds = THROUGHPUT_SECONDS_QUICK if quick else THROUGHPUT_SECONDS_FULL
    rows: list[dict] = []
    with Stack() as stack:
        env = stack.engine_env("actions")
        api = start_engine({**env, "IS_API": "1"})
        api.wait_healthy()
        workers = [start_engine({**env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"})]
        workers[0].wait_healthy()
        token = _setup(api.url, env)
        action, raw = ActionCall(api.url, token), CeleryCall(env)
        for worker_count in (1, 2):
            if worker_count == 2:
                workers.append(start_engine({**env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"}))
                workers[1].wait_healthy()
            _throughput(action, WARMUP_SECONDS), _throughput(raw, WARMUP_SECONDS)
            action_ms, raw_ms = _latencies(action, count), _latencies(raw, count)
            processes = {
                "API": [api.process.pid],
                "workers": [worker.process.pid for worker in workers],
                "MongoDB": [stack.mongo.process.pid],
                "Redis": [stack.redis.process.pid],
            }
            ours, theirs = _interleaved_throughput(action, raw, seconds, THROUGHPUT_SLICES, processes)
            name = f"actions run ({worker_count} instant worker{'s' if worker_count > 1 else ''})"
            a50, r50 = median(action_ms), median(raw_ms)
            rows += [
                row(
                    f"{name}: round trip p50",
                    a50,
                    "ms",
                    r50,
                    "raw Celery p50",
                    f"overhead {a50 - r50:.1f} ms (target < 10 ms); {count} sequential requests",
                ),
                row(
                    f"{name}: round trip p99",
                    percentile(action_ms, 0.99),
                    "ms",
                    percentile(raw_ms, 0.99),
                    "raw Celery p99",
                ),
                row(
                    f"{name}: throughput",
                    ours.rate,
                    "runs/s",
                    theirs.rate,
                    "raw Celery tasks/s",
                    f"{CONCURRENCY} clients for {seconds:.0f} s; target ratio >= 0.5",
                ),
                row(
                    f"{name}: CPU per run",
                    sum(ours.cpu_ms_per_run().values()),
                    "ms",
                    sum(theirs.cpu_ms_per_run().values()),
                    "raw Celery CPU per task",
                    f"during the throughput slices, ms by process: ours {_cpu_note(ours)}; "
                    f"raw Celery {_cpu_note(theirs)}",
                ),
            ]
        action.close()
        raw.close()
        for process in (*workers, api):
            process.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_actions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(describe_machine())
    for result in run(args.quick):
        print(
            f"{result['benchmark']:<62} {result['figure']:>9} {result['unit']:<7} "
            f"baseline {result['baseline']:>9} ({result['baseline_name']}) ratio {result['ratio']}  {result['notes']}"
        )


if __name__ == "__main__":
    main()
