"""One active orchestrator: a lease document in MongoDB, timed by the server's clock, fenced.

Each replica calls `hold()` every tick. The holder renews; another replica takes over only once
the lease has expired by MongoDB's own clock (hello.localTime), so replicas' clock skew does not matter.
Every takeover increments `fencing`: work done under a lease carries its token, and an old
holder that wakes up late finds its token superseded. Fires are idempotent on their own as well
(unique records), so even two holders at once cannot start the same scheduled run twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

LEASE_COLLECTION = "orchestrator_leases"
LEASE_TTL_SECONDS = 10.0
"""A holder that stops renewing loses the lease after this; takeover is well within 30 s."""


@dataclass(frozen=True)
class Lease:
    """The lease as this replica holds it."""

    owner: str
    fencing: int


class LeaderLease:
    """The lease named `name` for owner `owner` (one per orchestrator process)."""

    def __init__(
        self,
        collection: Collection,
        owner: str,
        *,
        name: str = "orchestrator",
        ttl_seconds: float = LEASE_TTL_SECONDS,
    ):
        self.collection = collection
        self.owner = owner
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)
        self._held: Lease | None = None

    def server_now(self) -> datetime:
        """MongoDB's clock (hello.localTime), so replicas' clock skew does not matter."""
        now = self.collection.database.client.admin.command("hello")["localTime"]
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    def hold(self) -> Lease | None:
        """Take or renew the lease; the Lease when this owner holds it, else None."""
        now = self.server_now()
        expires = now + self.ttl
        if self._held is not None:
            renewed = self.collection.update_one(
                {"_id": self.name, "owner": self.owner, "fencing": self._held.fencing},
                {"$set": {"expiresAt": expires, "renewedAt": now}},
            )
            if renewed.matched_count:
                return self._held
            self._held = None
        document = self.collection.find_one_and_update(
            {"_id": self.name, "$or": [{"owner": None}, {"owner": self.owner}, {"expiresAt": {"$lt": now}}]},
            {"$set": {"owner": self.owner, "expiresAt": expires, "renewedAt": now}, "$inc": {"fencing": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            try:
                self.collection.insert_one(
                    {
                        "_id": self.name,
                        "owner": self.owner,
                        "fencing": 1,
                        "expiresAt": expires,
                        "renewedAt": now,
                    }
                )
                document = {"fencing": 1}
            except DuplicateKeyError:
                return None  # held by another replica and not expired
        self._held = Lease(self.owner, int(document["fencing"]))
        return self._held

    def is_current(self, lease: Lease) -> bool:
        """True while `lease` is still the latest one (checked before each batch of work)."""
        document = self.collection.find_one({"_id": self.name}, {"owner": 1, "fencing": 1})
        if document is None:
            return False
        return document["owner"] == lease.owner and document["fencing"] == lease.fencing

    def release(self) -> None:
        """Give the lease up at once (on shutdown), so a standby takes over without waiting."""
        self.collection.update_one({"_id": self.name, "owner": self.owner}, {"$set": {"owner": None}})
        self._held = None
