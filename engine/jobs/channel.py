"""The message channel to queued workers: `queued.execute_job` messages on the broker's `queued` list."""

from __future__ import annotations

from engine import broker
from engine.broker import QUEUED_QUEUE
from engine.services import Services

EXECUTE_TASK = "queued.execute_job"
RECONCILE_TASK = "queued.reconcile"

__all__ = ["EXECUTE_TASK", "QUEUED_QUEUE", "RECONCILE_TASK", "send_execute"]


def send_execute(services: Services, job_id: str, token: str) -> None:
    """Put one `queued.execute_job(job_id, token)` message on the queued queue."""
    broker.publish(services.broker, EXECUTE_TASK, QUEUED_QUEUE, [job_id, token])
