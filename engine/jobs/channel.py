"""The message channel to queued workers: Celery on REDIS_URI, one producer app per broker and process."""

from __future__ import annotations

import os
import threading

from celery import Celery

from engine.config import Config

EXECUTE_TASK = "queued.execute_job"
RECONCILE_TASK = "queued.reconcile"
QUEUED_QUEUE = "queued"

_lock = threading.Lock()
_producers: dict[tuple[int, str], Celery] = {}


def producer(config: Config) -> Celery:
    """A Celery app that only sends (built after fork: connection pools are per process)."""
    key = (os.getpid(), config.broker_url)
    app = _producers.get(key)
    if app is None:
        with _lock:
            app = _producers.get(key)
            if app is None:
                app = Celery("engine-producer", broker=config.broker_url, set_as_current=False)
                app.conf.update(
                    task_serializer="json",
                    accept_content=["json"],
                    broker_connection_retry=True,
                    broker_transport_options={"socket_timeout": 10, "socket_connect_timeout": 5},
                )
                _producers[key] = app
    return app


def send_execute(config: Config, job_id: str, token: str) -> None:
    """Put one `queued.execute_job(job_id, token)` message on the queued queue."""
    producer(config).send_task(EXECUTE_TASK, args=[job_id, token], queue=QUEUED_QUEUE)
