"""The Celery application. Created without I/O; `configure_celery` points it at the broker.

Only JSON crosses the queue. Workers hold no message beyond the one they run (no prefetch,
late ack), so a worker that dies loses at most the message it was running, which MongoDB can
rebuild (domain.md §10).
"""

from __future__ import annotations

from celery import Celery

from engine.broker import INSTANT_QUEUE, QUEUED_QUEUE
from engine.config import Config

__all__ = ["INSTANT_QUEUE", "QUEUED_QUEUE", "celery_app", "configure_celery", "task_modules"]


BROKER_VISIBILITY_TIMEOUT_SECONDS = 3 * 3600
"""Redelivery of an unacked message; above the longest task (MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS)."""

NOT_TASK_MODULES = frozenset({"app", "worker", "runtime"})
"""Modules of the tasks package that define no tasks; every other one is imported by every process."""


def task_modules() -> list[str]:
    """Every tasks.* module that defines tasks (so producers and workers agree on names)."""
    import pkgutil

    import tasks

    return sorted(
        f"tasks.{info.name}"
        for info in pkgutil.iter_modules(tasks.__path__)
        if info.name not in NOT_TASK_MODULES
    )


celery_app = Celery("engine", set_as_current=True)


def configure_celery(app: Celery, config: Config) -> Celery:
    """Apply the engine's settings to the Celery app."""
    if getattr(app, "engine_config", None) is not None:
        # Reconfigured (a process building apps for several configurations, e.g. tests): drop
        # the connections made for the previous broker, or it keeps sending there.
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        amqp = app.__dict__.get("amqp")
        if amqp is not None:
            amqp._producer_pool = None
    app.conf.update(
        broker_url=config.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": max(
                BROKER_VISIBILITY_TIMEOUT_SECONDS, config.max_queued_tasks_process_time_seconds * 2
            ),
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "health_check_interval": 15,
        },
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=INSTANT_QUEUE,
        task_routes={"instant.*": {"queue": INSTANT_QUEUE}, "queued.*": {"queue": QUEUED_QUEUE}},
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
        timezone="UTC",
        imports=task_modules(),
    )
    app.loader.import_default_modules()
    app.engine_config = config  # type: ignore[attr-defined]
    return app
