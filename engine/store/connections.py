"""The `connections` collection: a customer's authenticated link to an integration.

Credentials are stored only as an encrypted envelope (`credentials`), bound to the connection id.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "connections"

register_indexes(
    COLLECTION,
    [
        IndexModel(
            [("workspaceId", ASCENDING), ("customerId", ASCENDING), ("integrationId", ASCENDING)],
            unique=True,
            name="workspace_customer_integration",
        ),
        IndexModel([("workspaceId", ASCENDING)], name="workspace"),
    ],
)


class ConnectionExists(Exception):
    """The customer already has a connection to this integration."""


def insert(db: Database, document: dict[str, Any]) -> None:
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise ConnectionExists() from error


def find_by_id(db: Database, connection_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": connection_id})


def find_for_customer(
    db: Database, workspace_id: str, customer_id: str, integration_id: str
) -> dict[str, Any] | None:
    return db[COLLECTION].find_one(
        {"workspaceId": workspace_id, "customerId": customer_id, "integrationId": integration_id}
    )


def list_page(
    db: Database, workspace_id: str, *, customer_id: str | None, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"workspaceId": workspace_id}
    if customer_id:
        query["customerId"] = customer_id
    if after_id:
        query["_id"] = {"$gt": after_id}
    return list(db[COLLECTION].find(query).sort("_id", ASCENDING).limit(limit))


def update(db: Database, connection_id: str, fields: dict[str, Any]) -> None:
    db[COLLECTION].update_one({"_id": connection_id}, {"$set": fields})


def delete(db: Database, connection_id: str) -> bool:
    return db[COLLECTION].delete_one({"_id": connection_id}).deleted_count == 1
