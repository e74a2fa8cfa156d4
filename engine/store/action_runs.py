"""The `action_runs` collection: one document per run of an action; its log record.

A run is written once when it ends (`insert_new`), unless something must be known before: a
`running` claim before calling out, or `queued` when the API stops waiting. While a run is
queued or running its document carries `pendingSince`, the only field of a sparse index, so
finished runs (nearly all of them) add no entry to it.

Also the completion signal on Redis (`action-run:{id}:done`): a list the worker pushes to when a
run ends and the API blocks on. Redis may lose it; MongoDB keeps the answer.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from redis import Redis

from engine.store.mongo import register_indexes
from engine.store.signal_sender import sender_for

COLLECTION = "action_runs"
DONE_SIGNAL_TTL_SECONDS = 120
"""How long an unread completion signal stays in Redis."""
MAX_BLOCK_SECONDS = 1.0
"""One BLPOP blocks at most this long (below the client's socket timeout); MongoDB is read in between."""

register_indexes(
    COLLECTION,
    [
        IndexModel([("workspaceId", ASCENDING), ("customerId", ASCENDING)], name="workspace_customer"),
        IndexModel([("pendingSince", ASCENDING)], name="pending_since", sparse=True),
    ],
)
PENDING_FIELD = "pendingSince"
"""Set while a run is queued (its creation time) or running (its claim time); removed when it ends."""
_FINISHED = {"$unset": {PENDING_FIELD: ""}}


def insert_new(db: Database, document: dict[str, Any]) -> bool:
    """Insert the run unless a document with its id exists; whether it was inserted."""
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError:
        return False
    return True


def find_by_id(db: Database, run_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": run_id})


def claim(db: Database, run_id: str, states: list[str], max_attempts: int, fields: dict[str, Any]) -> bool:
    """Set fields and count an attempt if the run is in one of states with attempts left."""
    result = db[COLLECTION].update_one(
        {"_id": run_id, "state": {"$in": states}, "attempts": {"$lt": max_attempts}},
        {"$set": fields, "$inc": {"attempts": 1}},
    )
    return result.modified_count == 1


def finish(db: Database, run_id: str, fields: dict[str, Any]) -> None:
    """Set the final fields of a recorded run (it is no longer pending)."""
    db[COLLECTION].update_one({"_id": run_id}, {"$set": fields, **_FINISHED})


def unfinished_before(db: Database, cutoff, *, limit: int) -> list[dict[str, Any]]:
    """Runs still queued or running that were created before cutoff (for the recovery sweep)."""
    return list(
        db[COLLECTION]
        .find({PENDING_FIELD: {"$lt": cutoff}}, {"_id": 1, "state": 1, "attempts": 1})
        .limit(limit)
    )


def count_pending(db: Database, state: str) -> int:
    """Recorded runs in state `queued` or `running` (through the sparse index)."""
    return db[COLLECTION].count_documents({PENDING_FIELD: {"$exists": True}, "state": state})


def list_page(
    db: Database,
    workspace_id: str,
    *,
    customer_id: str | None,
    action_key: str | None,
    after_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if customer_id:
        query["customerId"] = customer_id
    if action_key:
        query["actionKey"] = action_key
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query, {"input": 0}).sort("_id", ASCENDING).limit(limit))


def _signal_key(run_id: str) -> str:
    return f"action-run:{run_id}:done"


def signal_done(redis, run_id: str, payload: str) -> None:
    """Tell a waiting API process the run ended (best effort: Redis may be gone). On a plain Redis
    client the worker does not wait for Redis's replies (engine/store/signal_sender.py)."""
    key = _signal_key(run_id)
    if isinstance(redis, Redis):
        sender_for(redis).send([("LPUSH", key, payload), ("EXPIRE", key, DONE_SIGNAL_TTL_SECONDS)])
        return
    pipeline = redis.pipeline(transaction=False)
    pipeline.lpush(key, payload)
    pipeline.expire(key, DONE_SIGNAL_TTL_SECONDS)
    pipeline.execute()


def push_then_wait_signal(
    redis, queue: str, message: str, run_id: str, timeout_seconds: float
) -> bytes | None:
    """LPUSH message on queue, then block up to timeout_seconds (at most MAX_BLOCK_SECONDS) for the
    run's signal, in one round trip: the payload or None. Only where the queue is on this Redis."""
    pipeline = redis.pipeline(transaction=False)
    pipeline.lpush(queue, message)
    pipeline.blpop([_signal_key(run_id)], timeout=_block_seconds(timeout_seconds))
    popped = pipeline.execute()[1]
    return popped[1] if popped else None


def _block_seconds(timeout_seconds: float) -> float:
    return max(0.01, min(timeout_seconds, MAX_BLOCK_SECONDS))


def wait_signal(redis, run_id: str, timeout_seconds: float) -> bytes | None:
    """Block up to timeout_seconds (at most MAX_BLOCK_SECONDS) for the run's signal; its payload or None."""
    popped = redis.blpop([_signal_key(run_id)], timeout=_block_seconds(timeout_seconds))
    return popped[1] if popped else None
