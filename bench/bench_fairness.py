"""The noisy neighbour: customer A floods the queue, customers B..K each send a run every second;
B..K's queue wait (enqueue to start) with fair dispatch beside plain FIFO Celery, in the same run,
on one queued worker. Also the dispatch overhead: no-op runs per second through the fair path
(MongoDB job, fair dispatch, claim, lease, finish) beside straight Celery tasks.

Workload: A queues A_RUNS runs of A_RUN_MS each (10,000 in a full run, --quick: 300), then
B..K (10 customers) each queue one short run per second for SENDING_SECONDS. Target: B..K's p99
under 2 s with fair dispatch, while FIFO grows with A's backlog (B..K wait behind all of it).

    .venv/bin/python -m bench.bench_fairness [--quick]

`run(quick)` returns rows {benchmark, figure, unit, baseline, baseline_name, ratio, notes}.
The worker imports this module (ENGINE_EXTRA_JOB_MODULES) for its job kinds and Celery tasks.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from engine.jobs.registry import job_handler
from tasks.app import celery_app

A_RUNS_FULL, A_RUNS_QUICK = 10_000, 300
A_RUN_MS = 10
SENDERS = [f"customer-{c}" for c in "BCDEFGHIJK"]
SENDING_SECONDS_FULL, SENDING_SECONDS_QUICK = 10, 4
OVERHEAD_RUNS_FULL, OVERHEAD_RUNS_QUICK = 500, 100
FLOOD_THREADS = 8
"""A's flood is sent from several threads, as several API processes would."""
WAIT_TIMEOUT_SECONDS = 900.0
FIFO_STARTS = "bench_fifo_starts"
NOOP_COUNTER = "bench:fairness:noop-done"


# --- what the worker runs (imported there through ENGINE_EXTRA_JOB_MODULES) ----------------------


@job_handler("bench-sleep")
def _sleep_job(job, ctx):
    time.sleep(job.payload.get("ms", 0) / 1000)
    return None


@job_handler("bench-noop")
def _noop_job(job, ctx):
    return None


@celery_app.task(name="queued.bench_fifo_sleep", ignore_result=True)
def fifo_sleep(sent_at: float, ms: float, customer: str) -> None:
    """The FIFO baseline's run: record when it started, then sleep like the fair run does."""
    from tasks.runtime import services

    services().db[FIFO_STARTS].insert_one({"customer": customer, "wait": time.time() - sent_at})
    time.sleep(ms / 1000)


@celery_app.task(name="queued.bench_fifo_noop", ignore_result=True)
def fifo_noop() -> None:
    from tasks.runtime import services

    services().redis.incr(NOOP_COUNTER)


# --- the measurement ----------------------------------------------------------------------------

POLL_SECONDS = 0.2
"""Polling MongoDB more often would load the (single-process) test store the worker also uses."""


def _wait(predicate, what: str, timeout: float = WAIT_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def _all_reached(services, job_ids: list[str], field: str):
    """A predicate: every job has `field` set (one find_one by _id per job still pending: cheap)."""
    pending = set(job_ids)

    def check() -> bool:
        for job_id in list(pending):
            document = services.db["jobs"].find_one({"_id": job_id}, {field: 1})
            if document and document.get(field) is not None:
                pending.discard(job_id)
            else:
                return False
        return True

    return check


def _send_every_second(seconds: int, send) -> None:
    """Each sender sends one run per second, for `seconds` seconds."""
    started = time.monotonic()
    for tick in range(seconds):
        for customer in SENDERS:
            send(customer)
        time.sleep(max(0.0, started + tick + 1 - time.monotonic()))


def _fair_overhead(services, runs: int) -> float:
    from engine.jobs.service import enqueue_job

    started = time.perf_counter()
    with ThreadPoolExecutor(FLOOD_THREADS) as pool:
        jobs = list(
            pool.map(
                lambda i: enqueue_job(
                    services,
                    kind="bench-noop",
                    workspace_id="ws",
                    customer_id=f"o{i % 10}",
                    connection_id=None,
                    payload={},
                    launched_by="api",
                ),
                range(runs),
            )
        )
    _wait(_all_reached(services, [j.id for j in jobs], "finishedAt"), "the no-op jobs")
    return runs / (time.perf_counter() - started)


def _raw_celery(services):
    """A plain Celery app sending to the same broker: the baseline's producer (send_task)."""
    from celery import Celery

    app = Celery("bench-producer", broker=services.config.broker_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    return app


def _celery_overhead(services, runs: int) -> float:
    app = _raw_celery(services)
    started = time.perf_counter()
    with ThreadPoolExecutor(FLOOD_THREADS) as pool:
        list(pool.map(lambda _: app.send_task("queued.bench_fifo_noop", queue="queued"), range(runs)))
    _wait(lambda: int(services.redis.get(NOOP_COUNTER) or 0) >= runs, "the no-op Celery tasks")
    return runs / (time.perf_counter() - started)


def _fifo_waits(services, a_runs: int, seconds: int) -> list[float]:
    app = _raw_celery(services)

    def send(customer: str, ms: float) -> None:
        app.send_task("queued.bench_fifo_sleep", args=[time.time(), ms, customer], queue="queued")

    with ThreadPoolExecutor(FLOOD_THREADS) as pool:
        list(pool.map(lambda _: send("customer-A", A_RUN_MS), range(a_runs)))
    _send_every_second(seconds, lambda c: send(c, 1))
    expected = len(SENDERS) * seconds
    collection = services.db[FIFO_STARTS]
    _wait(
        lambda: collection.count_documents({"customer": {"$ne": "customer-A"}}) >= expected, "FIFO B..K runs"
    )
    services.redis.delete("queued")  # drop what is left of A's FIFO backlog before the fair phase
    return [d["wait"] for d in collection.find({"customer": {"$ne": "customer-A"}})]


def _fair_waits(services, a_runs: int, seconds: int) -> tuple[list[float], float]:
    from engine.jobs.service import enqueue_job

    def enqueue(customer: str, ms: float):
        return enqueue_job(
            services,
            kind="bench-sleep",
            workspace_id="ws",
            customer_id=customer,
            connection_id=f"conn-{customer}",
            payload={"ms": ms},
            launched_by="api",
        )

    flood_started = time.perf_counter()
    with ThreadPoolExecutor(FLOOD_THREADS) as pool:
        list(pool.map(lambda _: enqueue("customer-A", A_RUN_MS), range(a_runs)))
    flood_seconds = time.perf_counter() - flood_started
    sent: list[str] = []
    _send_every_second(seconds, lambda c: sent.append(enqueue(c, 1).id))
    _wait(_all_reached(services, sent, "startedAt"), "fair B..K runs")
    documents = [
        services.db["jobs"].find_one({"_id": job_id}, {"startedAt": 1, "createdAt": 1}) for job_id in sent
    ]
    waits = [(d["startedAt"] - d["createdAt"]).total_seconds() for d in documents]
    return waits, flood_seconds


def run(quick: bool) -> list[dict]:
    from bench.common import Stack, percentile, row, start_engine
    from engine.config import load_config
    from engine.services import Services
    from engine.store.job_backlog import Backlog
    from engine.store.mongo import ensure_indexes

    a_runs = A_RUNS_QUICK if quick else A_RUNS_FULL
    seconds = SENDING_SECONDS_QUICK if quick else SENDING_SECONDS_FULL
    overhead_runs = OVERHEAD_RUNS_QUICK if quick else OVERHEAD_RUNS_FULL
    with Stack() as stack:
        env = stack.engine_env(
            "fairness",
            IS_API="0",
            IS_QUEUED_TASKS_WORKER="1",
            ENABLE_LIMITS="1",
            ENGINE_EXTRA_JOB_MODULES="bench.bench_fairness",
        )
        config = load_config({**env, "IS_API": "1", "IS_QUEUED_TASKS_WORKER": "0"})
        services = Services.from_config(config)
        ensure_indexes(services.db)
        worker = start_engine(env)
        _wait(lambda: Backlog(services.redis).live_workers() >= 1, "the queued worker", 120)
        try:
            celery_rate = _celery_overhead(services, overhead_runs)
            fair_rate = _fair_overhead(services, overhead_runs)
            fifo = _fifo_waits(services, a_runs, seconds)
            fair, flood_seconds = _fair_waits(services, a_runs, seconds)
        finally:
            worker.stop()
            services.close()
    fifo_name = "plain FIFO Celery, same worker, same run"
    workload = (
        f"A floods {a_runs} runs of {A_RUN_MS} ms, B..K send 1 run/s each for {seconds} s; one queued worker; "
        f"{len(fair)} B..K runs"
    )
    return [
        row(
            "fairness.queue_wait_p50", percentile(fair, 0.5), "s", percentile(fifo, 0.5), fifo_name, workload
        ),
        row(
            "fairness.queue_wait_p99",
            percentile(fair, 0.99),
            "s",
            percentile(fifo, 0.99),
            fifo_name,
            workload + "; target p99 < 2 s",
        ),
        row(
            "fairness.dispatch_throughput",
            fair_rate,
            "runs/s",
            celery_rate,
            "straight Celery no-op task, same worker",
            f"{overhead_runs} no-op runs enqueued from {FLOOD_THREADS} "
            f"threads, first enqueue to last finish; A's flood of {a_runs} took {flood_seconds:.1f} s to enqueue",
            digits=1,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"A floods {A_RUNS_QUICK} runs, not {A_RUNS_FULL}"
    )
    args = parser.parse_args()
    for result in run(args.quick):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
