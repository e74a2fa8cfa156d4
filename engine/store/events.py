"""The `events` collection: external events (webhooks, app events, data-record changes) as
received, stored before the API answers 202, then marked processed with the runs they queued."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database

from engine.store.mongo import register_indexes

COLLECTION = "events"

register_indexes(
    COLLECTION,
    [
        IndexModel([("workspaceId", ASCENDING), ("receivedAt", ASCENDING)], name="workspace_received"),
        IndexModel([("state", ASCENDING)], name="state"),
    ],
)


def insert(db: Database, document: dict[str, Any]) -> None:
    db[COLLECTION].insert_one(document)


def find_by_id(db: Database, event_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": event_id})


def update(db: Database, event_id: str, fields: dict[str, Any]) -> bool:
    return db[COLLECTION].update_one({"_id": event_id}, {"$set": fields}).matched_count == 1


def delete(db: Database, event_id: str) -> None:
    db[COLLECTION].delete_one({"_id": event_id})


def pending(db: Database, *, limit: int = 100) -> list[dict[str, Any]]:
    """Events stored but not yet processed (recovery after a lost queue message)."""
    return list(db[COLLECTION].find({"state": "received"}).limit(limit))
