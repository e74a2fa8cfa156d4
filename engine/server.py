"""Run the API under gunicorn, configured from the engine's Config.

What maps to what (see docs/operations.md):
- KEEPALIVE_TIMEOUT_MS: how long an idle connection is held, by the API's worker
  (engine/api_worker.py). Set it above the load balancer's idle timeout.
- HEADERS_TIMEOUT_MS: how long a request's headers may take to arrive, by the same worker (408
  after it). It also bounds gunicorn's `timeout` (worker liveness) from below, so that the arbiter
  never kills a worker sooner than a slow client's headers may take.
On the threads fallback (a process not patched for gevent) gunicorn's `keepalive` (whole seconds)
holds idle connections and there is no headers timeout (gunicorn#2652).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import threading

from gunicorn.app.base import BaseApplication

from engine import green
from engine.config import Config
from engine.store.mongo import connect_mongo, ensure_indexes

log = logging.getLogger(__name__)

API_THREADS_PER_WORKER = 16
"""Threads per gunicorn worker when the process was not patched for gevent (see worker_class)."""
SETUP_THREADS_JOIN_SECONDS = 5.0
"""How long start-up waits for the setup MongoDB client's threads to end after it is closed."""
GRACEFUL_TIMEOUT_SECONDS = 30
MIN_WORKER_TIMEOUT_SECONDS = 120


def prepare_multiprocess_dir() -> str:
    """A fresh PROMETHEUS_MULTIPROC_DIR: wiped at start so dead workers' files do not linger."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"engine-prom-{os.getpid()}"
    )
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _child_exit(server, worker) -> None:  # noqa: ARG001 - gunicorn's hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_class() -> dict[str, object]:
    """The API's gevent worker (engine/api_worker.py) when `engine` patched this process at start
    (engine/green.py), so a request waiting for its action run holds no thread; else (a process
    that embeds the server without the patch) threads."""
    if green.is_patched():
        from engine.api_worker import ApiWorker

        return {"worker_class": ApiWorker, "worker_connections": green.API_WORKER_CONNECTIONS}
    log.warning("the API runs on threads: start it with the `engine` command to serve it on gevent")
    return {"worker_class": "gthread", "threads": API_THREADS_PER_WORKER}


class ApiServer(BaseApplication):
    """gunicorn with our settings; the Flask app is built in each worker after fork."""

    def __init__(self, config: Config):
        self.engine_config = config
        super().__init__()

    def load_config(self) -> None:
        config = self.engine_config
        settings = {
            "bind": f"0.0.0.0:{config.port}",
            "workers": config.web_concurrency,
            **worker_class(),
            "keepalive": config.keepalive_timeout_seconds,
            "timeout": max(MIN_WORKER_TIMEOUT_SECONDS, math.ceil(config.headers_timeout_ms / 1000)),
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "child_exit": _child_exit,
            "accesslog": "-" if config.debug_all else None,
            "loglevel": "debug" if config.debug_all else "info",
            "proc_name": "engine-api",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        from engine.app import create_app

        return create_app(self.engine_config)


def run_api(config: Config) -> None:
    """Serve the API until stopped (call prepare_stores first)."""
    prepare_multiprocess_dir()
    ApiServer(config).run()


def prepare_stores(config: Config) -> None:
    """Idempotent start-up work: indexes, and buckets outside production. Closes its clients."""
    before = set(threading.enumerate())
    client = connect_mongo(config.mongo_uri, app_name="engine-setup")
    try:
        ensure_indexes(client[config.database_name])
    finally:
        client.close()
        # The client's monitor threads end at their next tick: wait for them, so that no gunicorn
        # worker forked from this process inherits one half-way (on gevent they are greenlets,
        # which would fail in the child, where `threading` no longer knows them).
        for thread in set(threading.enumerate()) - before:
            thread.join(SETUP_THREADS_JOIN_SECONDS)
    if not config.is_production:
        from engine.store.blobs import BlobStore

        BlobStore.from_config(config).ensure_buckets()
