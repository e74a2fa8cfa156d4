"""The demo app's in-memory state: contacts, webhook subscriptions, OAuth2 grants and faults.

Contacts are kept in a dict plus a list sorted by (updated_at, id), so a page is a bisect and a
slice whatever the size. `updated_at` comes from a strictly increasing clock: no two changes
share a timestamp, which makes "updated_since" and cursors exact.
Deleted contacts stay as tombstones (`{"id", "deleted": true, "updated_at"}`), listed only with
`include_deleted=true`, so incremental syncs can see deletions; a full scan without them can
reconcile deletions by difference.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONTACT_FIELDS = ("email", "first_name", "last_name", "company", "phone")
DEFAULT_API_KEYS = ("demo-key",)
DEFAULT_USERS = {"demo": "demo-password"}
DEFAULT_OAUTH_CLIENTS = {"demo-client": "demo-secret"}
DEFAULT_ACCESS_TOKEN_TTL_SECONDS = 3600


def format_timestamp(microseconds: int) -> str:
    """Fixed-width ISO 8601 UTC, so text order is time order."""
    moment = datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> str:
    """Normalize an ISO 8601 timestamp to our fixed format; raise ValueError if it is not one."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DemoState:
    """Everything the demo app knows. All access goes through `lock` (the server is threaded)."""

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = DEFAULT_API_KEYS,
        users: dict[str, str] | None = None,
        oauth_clients: dict[str, str] | None = None,
        access_token_ttl_seconds: float = DEFAULT_ACCESS_TOKEN_TTL_SECONDS,
        rotate_refresh_tokens: bool = False,
        path: str | os.PathLike[str] | None = None,
    ):
        self.lock = threading.RLock()
        self.api_keys = set(api_keys)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.oauth_clients = dict(DEFAULT_OAUTH_CLIENTS if oauth_clients is None else oauth_clients)
        self.access_token_ttl_seconds = access_token_ttl_seconds
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.path = Path(path) if path else None
        self.contacts: dict[str, dict[str, Any]] = {}
        self.order: list[tuple[str, str]] = []  # (updated_at, id), sorted
        self.sequence = 0
        self.last_tick_us = 0
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, float] = {}  # token -> expires at (epoch seconds)
        self.refresh_tokens: dict[str, str] = {}  # token -> client id
        self.fault_rate_429 = 0.0
        self.fault_rate_500 = 0.0
        self.retry_after_seconds = 1
        self.fail_next: deque[int] = deque()
        self.rng = random.Random()
        self.stats = {"requests": 0, "faults429": 0, "faults500": 0, "deliveries": 0, "deliveryFailures": 0}
        if self.path and self.path.exists():
            self.load()

    # -- clock and ordering -------------------------------------------------------------------

    def tick(self) -> str:
        now_us = time.time_ns() // 1000
        self.last_tick_us = max(now_us, self.last_tick_us + 1)
        return format_timestamp(self.last_tick_us)

    def _place(self, record: dict[str, Any], previous_updated_at: str | None) -> None:
        if previous_updated_at is not None:
            index = bisect.bisect_left(self.order, (previous_updated_at, record["id"]))
            if index < len(self.order) and self.order[index] == (previous_updated_at, record["id"]):
                del self.order[index]
        bisect.insort(self.order, (record["updated_at"], record["id"]))

    # -- contacts ---------------------------------------------------------------------------

    def create_contact(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.sequence += 1
            now = self.tick()
            record: dict[str, Any] = {
                "id": f"c{self.sequence:07d}",
                **{k: fields.get(k) for k in CONTACT_FIELDS},
                "created_at": now,
                "updated_at": now,
            }
            self.contacts[record["id"]] = record
            self._place(record, None)
            return dict(record)

    def get_contact(self, contact_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.contacts.get(contact_id)
            return None if record is None or record.get("deleted") else dict(record)

    def update_contact(self, contact_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            record = self.contacts.get(contact_id)
            if record is None or record.get("deleted"):
                return None
            previous = record["updated_at"]
            record.update({k: v for k, v in fields.items() if k in CONTACT_FIELDS})
            record["updated_at"] = self.tick()
            self._place(record, previous)
            return dict(record)

    def delete_contact(self, contact_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.contacts.get(contact_id)
            if record is None or record.get("deleted"):
                return None
            previous = record["updated_at"]
            tombstone = {"id": contact_id, "deleted": True, "updated_at": self.tick()}
            self.contacts[contact_id] = tombstone
            self._place(tombstone, previous)
            return dict(tombstone)

    def list_contacts(
        self,
        *,
        limit: int,
        after: tuple[str, str] | None = None,
        updated_since: str | None = None,
        include_deleted: bool = False,
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """A page in (updated_at, id) order, and the key to continue after (None at the end)."""
        with self.lock:
            if after is not None:
                start = bisect.bisect_right(self.order, after)
            else:
                start = bisect.bisect_left(self.order, (updated_since, "")) if updated_since else 0
            items: list[dict[str, Any]] = []
            index = start
            while index < len(self.order):
                record = self.contacts[self.order[index][1]]
                index += 1
                if record.get("deleted") and not include_deleted:
                    continue
                if len(items) == limit:
                    # One more matching record exists: there is a next page.
                    return items, (items[-1]["updated_at"], items[-1]["id"])
                items.append(dict(record))
            return items, None

    def counts(self) -> dict[str, int]:
        with self.lock:
            deleted = sum(1 for r in self.contacts.values() if r.get("deleted"))
            return {"live": len(self.contacts) - deleted, "deleted": deleted}

    # -- persistence (for `make run`) ---------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        with self.lock:
            return {
                "contacts": list(self.contacts.values()),
                "sequence": self.sequence,
                "lastTickUs": self.last_tick_us,
                "webhooks": list(self.webhooks.values()),
                "accessTokens": self.access_tokens,
                "refreshTokens": self.refresh_tokens,
            }

    def save(self) -> None:
        if not self.path:
            return
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_document()))
        os.replace(temporary, self.path)  # atomic: a crash never leaves half a file

    def load(self) -> None:
        assert self.path is not None
        document = json.loads(self.path.read_text())
        with self.lock:
            self.contacts = {r["id"]: r for r in document.get("contacts", [])}
            self.order = sorted((r["updated_at"], r["id"]) for r in self.contacts.values())
            self.sequence = document.get("sequence", len(self.contacts))
            self.last_tick_us = document.get("lastTickUs", 0)
            self.webhooks = {w["id"]: w for w in document.get("webhooks", [])}
            self.access_tokens = dict(document.get("accessTokens", {}))
            self.refresh_tokens = dict(document.get("refreshTokens", {}))
