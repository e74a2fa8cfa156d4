"""Per-process services for tasks: built after fork (pymongo clients are not fork-safe)."""

from __future__ import annotations

import logging
import os

from celery.signals import worker_process_init, worker_process_shutdown

from engine.services import Services

log = logging.getLogger(__name__)

_services: Services | None = None
_pid: int | None = None


def services() -> Services:
    """This process's services, built on first use in each process."""
    global _services, _pid
    if _services is None or _pid != os.getpid():
        from tasks.app import celery_app

        config = getattr(celery_app, "engine_config", None)
        if config is None:
            raise RuntimeError("the Celery app is not configured: call tasks.app.configure_celery first")
        _services = Services.from_config(config, app_name=f"engine-worker-{os.getpid()}")
        _pid = os.getpid()
    return _services


def use_services(value: Services | None) -> None:
    """Install services for this process (tests that run tasks eagerly use this)."""
    global _services, _pid
    _services, _pid = value, os.getpid() if value else None


@worker_process_init.connect
def _reset_after_fork(**_: object) -> None:
    use_services(None)
    _connect()


def _connect() -> None:
    """Open this process's connections before its first task (best effort: a store that is down
    now is retried by the first task that needs it), so that task does not pay for them."""
    try:
        warm = services()
        warm.db.command("ping")
        warm.redis.ping()
        if warm.broker is not warm.redis:
            warm.broker.ping()
    except Exception as error:  # noqa: BLE001 - see the docstring
        log.warning("could not connect ahead of the first task: %s", error)


@worker_process_shutdown.connect
def _close(**_: object) -> None:
    if _services is not None:
        _services.close()
