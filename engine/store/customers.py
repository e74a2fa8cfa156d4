"""The `customers` collection: users of a workspace, unique by (workspaceId, internalId)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "customers"

register_indexes(
    COLLECTION,
    [
        IndexModel(
            [("workspaceId", ASCENDING), ("internalId", ASCENDING)], unique=True, name="workspace_internal_id"
        ),
        IndexModel([("workspaceId", ASCENDING)], name="workspace"),
    ],
)


class CustomerExists(Exception):
    """A customer with this internalId already exists in the workspace."""


def insert(db: Database, document: dict[str, Any]) -> None:
    """Insert; CustomerExists on a duplicate (workspaceId, internalId)."""
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise CustomerExists(document.get("internalId")) from error


def find_by_internal_id(db: Database, workspace_id: str, internal_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"workspaceId": workspace_id, "internalId": internal_id})


def find_by_id(db: Database, workspace_id: str, customer_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": customer_id, "workspaceId": workspace_id})


def list_page(db: Database, workspace_id: str, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def delete(db: Database, workspace_id: str, customer_id: str) -> bool:
    return db[COLLECTION].delete_one({"_id": customer_id, "workspaceId": workspace_id}).deleted_count == 1
