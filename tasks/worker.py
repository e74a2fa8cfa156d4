"""Start a Celery worker for one queue, with its health server on PORT."""

from __future__ import annotations

import logging
import os
import socket

from celery.worker import state as worker_state

from engine.config import Config, Mode
from engine.health import HealthChecker
from engine.healthserver import json_route, start_health_server
from engine.services import Services
from tasks.app import INSTANT_QUEUE, QUEUED_QUEUE, celery_app, configure_celery

log = logging.getLogger(__name__)

QUEUE_TIME_LIMIT_GRACE_SECONDS = 60
"""The hard Celery time limit sits this far above MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS: a backstop."""

QUEUE_OF_MODE = {Mode.INSTANT_WORKER: INSTANT_QUEUE, Mode.QUEUED_WORKER: QUEUED_QUEUE}


def worker_busy() -> int:
    """1 while this worker runs a task, else 0 (the main process's view of its pool)."""
    return 1 if worker_state.active_requests else 0


def _queued_metrics() -> tuple[int, str, bytes]:
    body = (
        "# HELP queued_tasks_worker_busy 1 if this worker is processing a task from the queued-tasks queue\n"
        "# TYPE queued_tasks_worker_busy gauge\n"
        f"queued_tasks_worker_busy {worker_busy()}\n"
    )
    return 200, "text/plain; version=0.0.4; charset=utf-8", body.encode()


def run_worker(config: Config, mode: Mode) -> None:
    """Run the worker of `mode` until stopped: concurrency 1, no prefetch, late ack."""
    queue = QUEUE_OF_MODE[mode]
    configure_celery(celery_app, config)
    services = Services.from_config(config, app_name=f"engine-{mode.value}-main")
    checker = HealthChecker(services, mode.value, details=lambda: {"queue": queue, "busy": worker_busy()})

    def health() -> tuple[int, dict]:
        report = checker.report()
        return report.status_code, report.to_document()

    routes = {"/": json_route(health)}
    if mode is Mode.QUEUED_WORKER:
        routes["/prometheus/queued-tasks"] = _queued_metrics
    start_health_server(config.port, routes)

    argv = [
        "worker",
        "--queues",
        queue,
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "--hostname",
        f"{queue}-{os.getpid()}@{socket.gethostname()}",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "DEBUG" if config.debug_all else "INFO",
    ]
    if mode is Mode.QUEUED_WORKER:
        argv += [
            "--time-limit",
            str(config.max_queued_tasks_process_time_seconds + QUEUE_TIME_LIMIT_GRACE_SECONDS),
        ]
    log.info("starting %s on queue %s", mode.value, queue)
    celery_app.worker_main(argv)
