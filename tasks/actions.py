"""Instant tasks of actions: run one action run; and a bare signal task for the benchmark."""

from __future__ import annotations

from engine.domain.action_runs import execute_run
from tasks.app import celery_app
from tasks.runtime import services


@celery_app.task(name="instant.run_action", bind=True)
def run_action(
    self, action_run_id: str, snapshot: dict | None = None, redelivered: bool = False
) -> str | None:
    """Execute action run action_run_id: from its snapshot on a first delivery, else as MongoDB
    has it (idempotent on redelivery). The worker records the run."""
    redelivered = redelivered or bool((self.request.delivery_info or {}).get("redelivered"))
    return execute_run(services(), action_run_id, redelivered=redelivered, snapshot=snapshot)


@celery_app.task(name="instant.signal")
def signal(key: str) -> None:
    """LPUSH to key: the raw Celery round trip the benchmark compares POST /actions/{key}/run with."""
    client = services().redis
    client.lpush(key, "1")
    client.expire(key, 60)
