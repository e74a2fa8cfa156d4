"""The `flow_node_runs` collection: one document per (flow run, node key), written as the node
starts and again as it finishes, so the API shows a run's progress while it works.

`_id` is `<runId>:<nodeKey>`, so writes are upserts by _id (fast) and a retried run overwrites
the records of its previous attempt instead of duplicating them.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from engine.store.mongo import register_indexes

COLLECTION = "flow_node_runs"

register_indexes(COLLECTION, [IndexModel([("runId", ASCENDING)], name="run")])


def node_run_id(run_id: str, node_key: str) -> str:
    return f"{run_id}:{node_key}"


def save(db: Database, document: dict[str, Any]) -> None:
    """Insert the node run, or replace it if it exists (its _id is node_run_id(runId, nodeKey)).

    insert_one first: it is the fast path, and a node run is almost always new."""
    try:
        db[COLLECTION].insert_one(document)
    except DuplicateKeyError:
        db[COLLECTION].replace_one({"_id": document["_id"]}, document, upsert=True)


def save_many(db: Database, documents: list[dict[str, Any]]) -> None:
    """save() each document, in one insert when none of them exists yet (the usual case)."""
    if len(documents) == 1:
        save(db, documents[0])
        return
    try:
        db[COLLECTION].insert_many(documents, ordered=True)
    except BulkWriteError:
        for document in documents:  # some exist (a retried run): replace them one by one
            save(db, document)


def update(db: Database, document_id: str, fields: dict[str, Any]) -> bool:
    """Set fields of a node run written before (by _id: one fast write)."""
    return db[COLLECTION].update_one({"_id": document_id}, {"$set": fields}).matched_count == 1


def find(db: Database, run_id: str, node_key: str) -> dict[str, Any] | None:
    return db[COLLECTION].find_one({"_id": node_run_id(run_id, node_key)})


def of_run(db: Database, run_id: str, *, projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return list(db[COLLECTION].find({"runId": run_id}, projection))


def delete_of_run(db: Database, run_id: str) -> int:
    return db[COLLECTION].delete_many({"runId": run_id}).deleted_count
