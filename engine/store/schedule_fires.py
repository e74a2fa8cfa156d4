"""The `schedule_fires` collection: one record per (flow instance, due time), fired or skipped.

Its unique `_id` is what makes a fire idempotent across orchestrator replicas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "schedule_fires"

register_indexes(
    COLLECTION, [IndexModel([("flowInstanceId", ASCENDING), ("due", ASCENDING)], name="instance_due")]
)


def fire_id(instance_id: str, due: datetime) -> str:
    """The id of the fire of instance at due (also used as the run's job id)."""
    return f"sched_{instance_id}_{int(due.timestamp())}"


def record(
    db: Database,
    instance_id: str,
    due: datetime,
    outcome: str,
    at: datetime,
    run_id: str | None = None,
    reason: str | None = None,
) -> bool:
    """Record the fire; False when it was already recorded (by this or another replica)."""
    document: dict[str, Any] = {
        "_id": fire_id(instance_id, due),
        "flowInstanceId": instance_id,
        "due": due,
        "outcome": outcome,
        "at": at,
        "runId": run_id,
        "reason": reason,
    }
    try:
        db[COLLECTION].insert_one(document)
        return True
    except DuplicateKeyError:
        return False


def of_instance(db: Database, instance_id: str) -> list[dict[str, Any]]:
    """Every fire of an instance, oldest first."""
    return list(db[COLLECTION].find({"flowInstanceId": instance_id}).sort("due", ASCENDING))
