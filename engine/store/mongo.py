"""MongoDB connection and the idempotent creation of every collection's indexes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from pymongo import IndexModel, MongoClient
from pymongo.database import Database

log = logging.getLogger(__name__)

SERVER_SELECTION_TIMEOUT_MS = 5_000
"""How long an operation waits for a reachable server before failing (ms)."""
CONNECT_TIMEOUT_MS = 3_000
"""TCP connect timeout to MongoDB (ms)."""

_INDEXES: dict[str, list[IndexModel]] = {}


def register_indexes(collection: str, indexes: Iterable[IndexModel]) -> None:
    """Declare indexes beside the queries that use them; `ensure_indexes` creates them all."""
    _INDEXES.setdefault(collection, []).extend(indexes)


def declared_indexes() -> Mapping[str, list[IndexModel]]:
    """Every index declared so far, by collection."""
    return _INDEXES


def connect_mongo(uri: str, *, app_name: str = "integration-engine") -> MongoClient:
    """A client for MONGO_URI (connects lazily; safe to create before fork only if unused)."""
    return MongoClient(
        uri,
        appname=app_name,
        serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
        connectTimeoutMS=CONNECT_TIMEOUT_MS,
        tz_aware=True,
        uuidRepresentation="standard",
    )


def ensure_indexes(db: Database) -> int:
    """Create every declared index (a no-op for those that exist). Returns how many were asked."""
    # Importing the store modules registers their indexes.
    from engine.store import collections  # noqa: F401

    count = 0
    for name, indexes in _INDEXES.items():
        unique = _distinct_keys(indexes)
        if unique:
            db[name].create_indexes(unique)
            count += len(unique)
    log.debug("ensured %d indexes", count)
    return count


def _distinct_keys(indexes: list[IndexModel]) -> list[IndexModel]:
    """The first declaration of each key pattern: two modules may index the same field."""
    seen: set[tuple] = set()
    distinct = []
    for index in indexes:
        key = tuple(index.document["key"].items())
        if key not in seen:
            seen.add(key)
            distinct.append(index)
    return distinct
