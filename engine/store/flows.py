"""The `flows` collection: flow definitions of a workspace, unique by (workspaceId, key)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "flows"

register_indexes(
    COLLECTION,
    [
        IndexModel([("workspaceId", ASCENDING), ("key", ASCENDING)], unique=True, name="workspace_key"),
    ],
)


class FlowExists(Exception):
    """A flow with this key already exists in the workspace."""


def insert(db: Database, document: dict[str, Any]) -> None:
    """Insert; FlowExists on a duplicate (workspaceId, key)."""
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise FlowExists(document.get("key")) from error


def find(db: Database, workspace_id: str, id_or_key: str) -> dict[str, Any] | None:
    """The flow with this id, else with this key, in the workspace."""
    return db[COLLECTION].find_one({"_id": id_or_key, "workspaceId": workspace_id}) or db[
        COLLECTION
    ].find_one({"workspaceId": workspace_id, "key": id_or_key})


def find_by_id(db: Database, flow_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": flow_id})


def list_page(db: Database, workspace_id: str, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def replace(db: Database, document: dict[str, Any]) -> bool:
    """Replace the stored flow (same _id); FlowExists if its new key is taken."""
    try:
        return db[COLLECTION].replace_one({"_id": document["_id"]}, document).matched_count == 1
    except DuplicateKeyError as error:
        raise FlowExists(document.get("key")) from error


def delete(db: Database, workspace_id: str, flow_id: str) -> bool:
    return db[COLLECTION].delete_one({"_id": flow_id, "workspaceId": workspace_id}).deleted_count == 1
