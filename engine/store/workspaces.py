"""The `workspaces` collection: one document per tenant; the secret is stored encrypted."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "workspaces"

register_indexes(COLLECTION, [IndexModel([("key", ASCENDING)], unique=True, name="key_unique")])


class WorkspaceKeyTaken(Exception):
    """A workspace with this key already exists."""


def insert(db: Database, document: dict[str, Any]) -> None:
    """Insert a new workspace; WorkspaceKeyTaken if its key is used."""
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise WorkspaceKeyTaken(document.get("key")) from error


def find_by_key(db: Database, key: str) -> dict[str, Any] | None:
    """The workspace with this key (indexed equality: fast)."""
    return db[COLLECTION].find_one({"key": key})


def find_by_id(db: Database, workspace_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": workspace_id})


def list_page(db: Database, *, after_id: str | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` workspaces with an id above `after_id`, in id order (ids sort by creation)."""
    query = {"_id": {"$gt": after_id}} if after_id else {}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))
