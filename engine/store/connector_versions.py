"""The `connector_versions` collection: one document per uploaded (workspace, connector key, version).

The archive itself is in CONNECTORS_S3_BUCKET; the document keeps its S3 key, digest, the parsed
spec and the Python operation sources (small), so running an operation needs no S3 read.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "connector_versions"

register_indexes(
    COLLECTION,
    [
        IndexModel(
            [("workspaceId", ASCENDING), ("key", ASCENDING), ("version", ASCENDING)],
            unique=True,
            name="workspace_key_version",
        ),
        IndexModel([("workspaceId", ASCENDING), ("key", ASCENDING)], name="workspace_key"),
        IndexModel([("workspaceId", ASCENDING)], name="workspace"),
    ],
)


class VersionExists(Exception):
    """This version of the connector was already uploaded."""


def insert(db: Database, document: dict[str, Any]) -> None:
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError as error:
        raise VersionExists(document.get("version")) from error


def exists(db: Database, workspace_id: str, key: str, version: str) -> bool:
    return (
        db[COLLECTION].find_one({"workspaceId": workspace_id, "key": key, "version": version}, {"_id": 1})
        is not None
    )


def find(db: Database, workspace_id: str, key: str, version: str) -> dict[str, Any] | None:
    """One version's metadata (without its sources), or None."""
    return db[COLLECTION].find_one(
        {"workspaceId": workspace_id, "key": key, "version": version}, {"pythonSources": 0}
    )


def versions_of(db: Database, workspace_id: str, key: str) -> list[dict[str, Any]]:
    """Every version of one connector (unsorted: sorting is the caller's, in memory)."""
    return list(db[COLLECTION].find({"workspaceId": workspace_id, "key": key}))


def find_by_id(db: Database, version_id: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": version_id})


def all_of_workspace(db: Database, workspace_id: str) -> list[dict[str, Any]]:
    """Every version of every connector of a workspace, without the spec (for listing)."""
    return list(db[COLLECTION].find({"workspaceId": workspace_id}, {"spec": 0, "pythonSources": 0}))
