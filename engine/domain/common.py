"""Helpers shared by the domain services: list paging, keys, times."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import ValidationFailed

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
KEY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Keys of workspaces, connectors, integrations and actions: lower-case, digits and '-', 1..63 chars."""
_KEY = re.compile(KEY_PATTERN)


def now() -> datetime:
    """The current UTC time, truncated to milliseconds (what MongoDB keeps)."""
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


def check_key(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValidationFailed(f"{field} must match {KEY_PATTERN}", field=field)
    return value


@dataclass(frozen=True)
class Page:
    """One page of a list: items and the cursor of the next page (None on the last)."""

    items: list[Any]
    cursor: str | None

    def to_document(self) -> dict[str, Any]:
        return {"items": [item.to_public() for item in self.items], "cursor": self.cursor}


def parse_limit(raw: str | None) -> int:
    """`?limit=` as an int in 1..MAX_PAGE_LIMIT (400 naming `limit` otherwise)."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed("limit must be a whole number", field="limit") from None
    if not 1 <= value <= MAX_PAGE_LIMIT:
        raise ValidationFailed(f"limit must be 1..{MAX_PAGE_LIMIT}", field="limit")
    return value


def page_of(documents: list[dict[str, Any]], limit: int, build) -> Page:
    """A Page from documents fetched with limit+1 (the extra one only says there is more)."""
    more = len(documents) > limit
    items = [build(d) for d in documents[:limit]]
    return Page(items, documents[limit - 1]["_id"] if more else None)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
