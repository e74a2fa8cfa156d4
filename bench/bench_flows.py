"""Benchmark of flow runs on one queued worker, beside plain Celery tasks doing the same work.

Workload (the published one of the fastest open-source workflow engine, on 2 vCPU: 2.4 s for
the 40 light runs, 7.9 s for the 10 long ones):

- 40 light flow runs, one `run-python` node computing fibo(10), queued at once and run one
  after another by a single queued worker;
- 10 long flow runs, the same node computing fibo(33).

Each figure is the total seconds from the first enqueue to the last run's `finishedAt`. The
baseline, measured in the same run, is the same computation as plain Celery tasks (fibo in the
task, no sandbox, no MongoDB) on one Celery worker of the same settings (prefork, concurrency 1,
late ack, no prefetch) and the same Redis.

Starts its own Redis, MongoDB-protocol server, S3 server, custom code runner and queued worker.

    .venv/bin/python -m bench.bench_flows [--quick]

`run(quick)` returns rows {benchmark, figure, unit, baseline, baseline_name, ratio, notes}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIGHT_RUNS = 40
LONG_RUNS = 10
LIGHT_N = 10
LONG_N = 33
QUICK_LONG_N = 27
"""--quick computes fibo(27) in the long runs (about 1/18 of the work) to finish in seconds."""
WARM_UP_RUNS = 3
RUN_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.02
"""How often the harness looks at the last run queued. The figure comes from the runs' own
finishedAt, so polling more often only loads the (single-process) test store the worker uses."""
PUBLISHED = {"light": 2.4, "long": 7.9}
PUBLISHED_NAME = "fastest open-source workflow engine, published, 2 vCPU"
FIBO_CODE = (
    "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n"
    "def run(input, ctx):\n    return {'fibo': fibo(input['n'])}\n"
)
BASELINE_COUNTER = "bench:flows:baseline-done"


def fibo(n: int) -> int:
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


# --- the plain-Celery baseline worker (`--celery-worker`) -----------------------------------


def _baseline_app(broker: str):
    from celery import Celery

    app = Celery("bench-flows-baseline", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_concurrency=1,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name="bench.fibo")
    def fibo_task(n: int) -> None:
        import redis

        value = fibo(n)
        redis.Redis.from_url(broker).incr(BASELINE_COUNTER)
        return value  # noqa: B901

    return app


def _celery_worker_main(broker: str) -> None:
    app = _baseline_app(broker)
    app.worker_main(
        [
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
            "--queues",
            "bench",
        ]
    )


# --- processes -------------------------------------------------------------------------------


def _wait_http(url: str, process: subprocess.Popen, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if requests.get(url + "/", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became healthy")


class _Stack:
    def __init__(self, tmp: Path):
        from engine.dev.servers import free_port, mongo_database_uri, start_mongo, start_redis, start_s3

        self.tmp = tmp
        self.servers = [
            start_redis(free_port(), log_path=tmp / "redis.log"),
            start_mongo(free_port(), log_path=tmp / "mongo.log"),
            start_s3(free_port(), log_path=tmp / "s3.log"),
        ]
        redis, mongo, s3 = self.servers
        self.env = {
            "NODE_ENV": "test",
            "MONGO_URI": mongo_database_uri(mongo, "bench_flows"),
            "REDIS_URI": f"redis://127.0.0.1:{redis.port}/1",
            "SECRET": "bench-secret-0123456789abcdefghijklmnop",
            "ENCRYPTION_SECRET": "bench-encryption-0123456789abcdefghij",
            "AWS_ENDPOINT_URL_S3": s3.uri,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "TMP_S3_BUCKET": "bench-tmp",
            "CONNECTORS_S3_BUCKET": "bench-connectors",
            "STATIC_S3_BUCKET": "bench-static",
            "IS_API": "0",
        }
        self.processes: list[subprocess.Popen] = []

    def start(self, env: dict[str, str], args: list[str], name: str) -> tuple[subprocess.Popen, str]:
        from engine.dev.servers import free_port

        port = free_port()
        full = {
            **os.environ,
            **self.env,
            **env,
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }
        full.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            [sys.executable, *args], env=full, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process, f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in reversed(self.servers):
            server.stop()


# --- the measured part ----------------------------------------------------------------------


def _setup_instances(services, long_n: int) -> dict[str, Any]:
    from engine.auth.principal import Principal, Role
    from engine.domain import connections, integrations, tenancy
    from engine.flows import service
    from examples.connectors.build import build_demo_connector_zip

    workspace, _secret = tenancy.create_workspace(services, None, "bench")
    integrations.upload_connector(services, workspace.id, build_demo_connector_zip("demo"))
    integrations.create_integration(services, workspace.id, "demo", "demo")
    customer = tenancy.ensure_customer(services, workspace.id, "bench-customer")
    connection, _ = connections.connect(
        services,
        workspace.id,
        customer.id,
        customer.internal_id,
        "demo",
        {"baseUrl": "http://127.0.0.1:9", "apiKey": "unused"},
    )
    admin = Principal(Role.WORKSPACE_ADMIN, workspace_id=workspace.id, workspace_key=workspace.key)
    instances = {}
    for name in ("light", "long"):
        service.create_flow(
            services,
            workspace.id,
            {
                "key": name,
                "trigger": {"type": "api-trigger"},
                "nodes": [{"key": "fibo", "type": "run-python", "config": {"code": FIBO_CODE}}],
                "links": [{"from": "trigger", "to": "fibo"}],
            },
        )
        instances[name] = service.create_instance(
            services, admin, {"flowId": name, "connectionId": connection.id}
        )
    return instances


def _run_batch(services, instance, count: int, n: int) -> tuple[float, float, str]:
    """(seconds from first enqueue to last finishedAt, wall seconds until all seen finished, a
    breakdown: the graph walk's own time and the job's claim-to-finish time, per run)."""
    from engine.flows.runs import enqueue_flow_run
    from engine.jobs.service import get_job

    started = time.time()
    ids = [enqueue_flow_run(services, instance, {"n": n}, launched_by="api").id for _ in range(count)]
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    enqueued = time.time() - started
    # The runs share one connection's lane, so they run in the order queued: wait for the last one
    # (one read per poll: the harness must not load the store the worker is measured on).
    while not get_job(services, ids[-1]).finished:
        if time.monotonic() > deadline:
            raise RuntimeError("the runs did not finish in time")
        time.sleep(POLL_SECONDS)
    finished_at, walks, claimed = [], [], []
    for run_id in ids:
        job = get_job(services, run_id)
        if job.state.value != "completed":
            raise RuntimeError(f"run {run_id} {job.state.value}: {job.error}")
        finished_at.append(job.finished_at.timestamp())
        walks.append(job.result["durationMs"])
        claimed.append((job.finished_at - job.started_at).total_seconds() * 1000)
    breakdown = (
        f"enqueue of all {enqueued * 1000:.0f} ms; per run: graph walk {sum(walks) / count:.1f} ms, "
        f"job claim-to-finish {sum(claimed) / count:.1f} ms"
    )
    return max(finished_at) - started, time.time() - started, breakdown


def _baseline_batch(broker: str, count: int, n: int) -> float:
    import redis

    client = redis.Redis.from_url(broker)
    client.delete(BASELINE_COUNTER)
    app = _baseline_app(broker)
    started = time.perf_counter()
    for _ in range(count):
        app.send_task("bench.fibo", args=[n], queue="bench")
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while int(client.get(BASELINE_COUNTER) or 0) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the baseline Celery tasks did not finish")
        time.sleep(POLL_SECONDS)
    return time.perf_counter() - started


def run(quick: bool) -> list[dict]:
    from engine.config import load_config
    from engine.services import Services
    from engine.store.mongo import ensure_indexes

    long_n = QUICK_LONG_N if quick else LONG_N
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as tmp:
        stack = _Stack(Path(tmp))
        try:
            runner, runner_url = stack.start(
                {"CUSTOM_CODE_RUNNER_HOST": "127.0.0.1"}, ["-m", "engine", "sandbox"], "runner"
            )
            worker, worker_url = stack.start(
                {"IS_QUEUED_TASKS_WORKER": "1", "CUSTOM_CODE_RUNNER_URI": runner_url},
                ["-m", "engine", "run"],
                "queued-worker",
            )
            broker = stack.env["REDIS_URI"]
            baseline, _ = stack.start(
                {}, ["-m", "bench.bench_flows", "--celery-worker", broker], "celery-baseline"
            )
            _wait_http(runner_url, runner)
            _wait_http(worker_url, worker)
            config = load_config({**stack.env, "CUSTOM_CODE_RUNNER_URI": runner_url, "IS_API": "1"})
            services = Services.from_config(config)
            ensure_indexes(services.db)
            services.blobs.ensure_buckets()
            instances = _setup_instances(services, long_n)
            _run_batch(services, instances["light"], WARM_UP_RUNS, LIGHT_N)
            _baseline_batch(broker, WARM_UP_RUNS, LIGHT_N)

            light, light_wall, light_parts = _run_batch(services, instances["light"], LIGHT_RUNS, LIGHT_N)
            light_base = _baseline_batch(broker, LIGHT_RUNS, LIGHT_N)
            long, long_wall, long_parts = _run_batch(services, instances["long"], LONG_RUNS, long_n)
            long_base = _baseline_batch(broker, LONG_RUNS, long_n)
            services.close()
        finally:
            stack.stop()
    cpus = os.cpu_count()
    rows = []
    load = os.getloadavg()[0]
    for name, count, n, figure, wall, base, parts in (
        ("light", LIGHT_RUNS, LIGHT_N, light, light_wall, light_base, light_parts),
        ("long", LONG_RUNS, long_n, long, long_wall, long_base, long_parts),
    ):
        rows.append(
            {
                "benchmark": f"flows: {count} {name} flow runs (run-python fibo({n})), one queued worker",
                "figure": round(figure, 3),
                "unit": "s",
                "baseline": round(base, 3),
                "baseline_name": f"plain Celery tasks, fibo({n}) in the task",
                "ratio": round(figure / base, 2) if base else None,
                "notes": (
                    f"first enqueue to last finishedAt; wall until seen by polling {wall:.3f} s; {parts}; "
                    f"published {PUBLISHED[name]} s ({PUBLISHED_NAME}); this machine {cpus} CPUs, "
                    f"load average {load:.1f} at the end"
                    + ("; --quick: fibo(27) instead of fibo(33)" if quick and name == "long" else "")
                ),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller long runs (fibo(27))")
    parser.add_argument("--celery-worker", metavar="BROKER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.celery_worker:
        _celery_worker_main(args.celery_worker)
        return
    for row in run(args.quick):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
