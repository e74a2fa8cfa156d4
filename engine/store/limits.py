"""The `limits` collection: overrides per workspace (`ws:<id>`) and per customer (`cus:<id>`)."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

COLLECTION = "limits"


def get(db: Database, scope_id: str) -> dict[str, Any]:
    document = db[COLLECTION].find_one({"_id": scope_id})
    return dict(document.get("values") or {}) if document else {}


def put(db: Database, scope_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Merge overrides (a None value removes that override); returns the stored overrides."""
    sets = {f"values.{k}": v for k, v in values.items() if v is not None}
    unsets = {f"values.{k}": "" for k, v in values.items() if v is None}
    update: dict[str, Any] = {}
    if sets:
        update["$set"] = sets
    if unsets:
        update["$unset"] = unsets
    if update:
        db[COLLECTION].update_one({"_id": scope_id}, update, upsert=True)
    return get(db, scope_id)
