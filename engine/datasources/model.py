"""The data source record: a collection of the external app, synced for one connection.

The same document carries the sync's progress (`current_sync`, written after every page) and
its history (`last_sync`), so `GET /data-sources/{id}` is one read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.domain.common import iso

MIN_PULL_UPDATES_INTERVAL_SECONDS = 10
MAX_PULL_UPDATES_INTERVAL_SECONDS = 7 * 24 * 3600
DEFAULT_PULL_UPDATES_INTERVAL_SECONDS = 300
MIN_FULL_SYNC_INTERVAL_SECONDS = 60
MAX_FULL_SYNC_INTERVAL_SECONDS = 90 * 24 * 3600
DEFAULT_FULL_SYNC_INTERVAL_SECONDS = 24 * 3600
DEFAULT_PAGE_SIZE_RECORDS = 100
MAX_PAGE_SIZE_RECORDS = 1000

SYNC_JOB_KIND = "data-source-sync"
EVENT_PULL_JOB_KIND = "event-pull"
LIMIT_KEY = "parallelEventPulls"
"""The workspace limit both job kinds run under (enforced by the job system)."""


class DataSourceKind(StrEnum):
    SYNC = "sync"  # a data source: records kept, incremental + full syncs
    EVENT_PULL = "event-pull"  # polling for events of an app without webhooks: incremental only


class DataSourceState(StrEnum):
    IDLE = "idle"
    QUEUED = "queued"
    SYNCING = "syncing"
    FAILED = "failed"


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


@dataclass(frozen=True)
class DataSource:
    id: str
    workspace_id: str
    customer_id: str
    connection_id: str
    collection: str
    kind: DataSourceKind
    pull_updates_interval_seconds: int
    full_sync_interval_seconds: int | None
    page_size: int
    state: DataSourceState
    created_at: datetime
    updated_at: datetime
    active_job_id: str | None = None
    generation: int = 0
    high_water_mark: str | None = None
    current_sync: dict[str, Any] | None = None
    last_sync: dict[str, Any] | None = None
    last_error: str | None = None
    last_sync_at: datetime | None = None
    last_full_sync_at: datetime | None = None
    next_incremental_at: datetime | None = None
    next_full_at: datetime | None = None
    baseline_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> DataSource:
        return cls(
            d["_id"],
            d["workspaceId"],
            d["customerId"],
            d["connectionId"],
            d["collection"],
            DataSourceKind(d.get("kind", DataSourceKind.SYNC.value)),
            int(d["pullUpdatesIntervalSeconds"]),
            d.get("fullSyncIntervalSeconds"),
            int(d.get("pageSize") or DEFAULT_PAGE_SIZE_RECORDS),
            DataSourceState(d.get("state", DataSourceState.IDLE.value)),
            d["createdAt"],
            d["updatedAt"],
            d.get("activeJobId"),
            int(d.get("generation", 0)),
            d.get("highWaterMark"),
            d.get("currentSync"),
            d.get("lastSync"),
            d.get("lastError"),
            d.get("lastSyncAt"),
            d.get("lastFullSyncAt"),
            d.get("nextIncrementalAt"),
            d.get("nextFullAt"),
            d.get("baselineAt"),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "customerId": self.customer_id,
            "connectionId": self.connection_id,
            "collection": self.collection,
            "kind": self.kind.value,
            "pullUpdatesIntervalSeconds": self.pull_updates_interval_seconds,
            "fullSyncIntervalSeconds": self.full_sync_interval_seconds,
            "pageSize": self.page_size,
            "state": self.state.value,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "activeJobId": self.active_job_id,
            "generation": self.generation,
            "highWaterMark": self.high_water_mark,
            "currentSync": self.current_sync,
            "lastSync": self.last_sync,
            "lastError": self.last_error,
            "lastSyncAt": self.last_sync_at,
            "lastFullSyncAt": self.last_full_sync_at,
            "nextIncrementalAt": self.next_incremental_at,
            "nextFullAt": self.next_full_at,
            "baselineAt": self.baseline_at,
        }

    @property
    def job_kind(self) -> str:
        return EVENT_PULL_JOB_KIND if self.kind is DataSourceKind.EVENT_PULL else SYNC_JOB_KIND

    def to_public(self) -> dict[str, Any]:
        progress = self.current_sync or self.last_sync or {}
        return {
            "id": self.id,
            "kind": self.kind.value,
            "connectionId": self.connection_id,
            "collection": self.collection,
            "customerId": self.customer_id,
            "pullUpdatesIntervalSeconds": self.pull_updates_interval_seconds,
            "fullSyncIntervalSeconds": self.full_sync_interval_seconds,
            "pageSize": self.page_size,
            "state": self.state.value,
            "activeJobId": self.active_job_id,
            "recordsSeen": int(progress.get("recordsSeen", 0)),
            "pages": int(progress.get("pages", 0)),
            "lastCursor": progress.get("cursor"),
            "lastError": self.last_error,
            "currentSync": _public_sync(self.current_sync),
            "lastSync": _public_sync(self.last_sync),
            "highWaterMark": self.high_water_mark,
            "generation": self.generation,
            "lastSyncAt": iso(self.last_sync_at),
            "lastFullSyncAt": iso(self.last_full_sync_at),
            "nextIncrementalAt": iso(self.next_incremental_at),
            "nextFullAt": iso(self.next_full_at),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


def _public_sync(sync: dict[str, Any] | None) -> dict[str, Any] | None:
    if not sync:
        return None
    return {k: (iso(v) if isinstance(v, datetime) else v) for k, v in sync.items()}
