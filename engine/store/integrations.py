"""The `integrations` collection: a workspace's use of one connector; parameters encrypted."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "integrations"

register_indexes(
    COLLECTION,
    [
        IndexModel([("workspaceId", ASCENDING), ("key", ASCENDING)], unique=True, name="workspace_key"),
    ],
)


class IntegrationExists(Exception):
    """An integration with this key already exists in the workspace."""


def insert(db: Database, document: dict[str, Any]) -> None:
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise IntegrationExists(document.get("key")) from error


def find_by_key(db: Database, workspace_id: str, key: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"workspaceId": workspace_id, "key": key})


def find_by_id(db: Database, integration_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": integration_id})


def list_page(db: Database, workspace_id: str, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def update(db: Database, workspace_id: str, integration_id: str, fields: dict[str, Any]) -> None:
    db[COLLECTION].update_one({"_id": integration_id, "workspaceId": workspace_id}, {"$set": fields})


def delete(db: Database, workspace_id: str, integration_id: str) -> bool:
    return db[COLLECTION].delete_one({"_id": integration_id, "workspaceId": workspace_id}).deleted_count == 1
