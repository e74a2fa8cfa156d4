"""The `actions` collection: named operations on an integration, unique by (workspaceId, key)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "actions"

register_indexes(
    COLLECTION,
    [
        IndexModel([("workspaceId", ASCENDING), ("key", ASCENDING)], unique=True, name="workspace_key"),
    ],
)


class ActionExists(Exception):
    """An action with this key already exists in the workspace."""


def insert(db: Database, document: dict[str, Any]) -> None:
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise ActionExists(document.get("key")) from error


def find_by_key(db: Database, workspace_id: str, key: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"workspaceId": workspace_id, "key": key})


def list_page(db: Database, workspace_id: str, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def delete(db: Database, workspace_id: str, key: str) -> bool:
    return db[COLLECTION].delete_one({"workspaceId": workspace_id, "key": key}).deleted_count == 1
