"""One sync of a data source: page by page, progress saved after every page, resumable.

    run_sync(services, data_source_id, job_id=job.id, mode=SyncMode.FULL, ctx=ctx)

Incremental: `list_records(since=<high-water mark of updatedAtField>)`. Full: everything, each
record stamped with the sync's `generation`; once the listing ends, stored records with an older
generation were not seen and are deleted (`deleted` events). After every page the cursor, page
and record counts are written to the data source (`currentSync`), so a sync that crashed resumes
from its cursor: a replayed page finds its records unchanged and fires nothing twice.

The app's 429s are waited out (Retry-After, in the job, checking `ctx.should_stop()`); 5xx and
timeouts are retried with a bounded exponential backoff. Other app errors fail the sync.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import requests

from engine.connectors import AppError, AppRateLimited, AppUnavailable, list_records
from engine.datasources import events as record_events
from engine.datasources.model import DataSource, DataSourceKind, DataSourceState, SyncMode
from engine.domain.common import now
from engine.outbound import outbound_session
from engine.services import Services
from engine.store import data_records as records_store
from engine.store import data_sources as sources_store

log = logging.getLogger(__name__)

APP_TIMEOUT_SECONDS = 30.0
MAX_RETRY_AFTER_WAIT_SECONDS = 300.0
"""A Retry-After longer than this fails the attempt (the job system retries it later, from the cursor)."""
MAX_CONSECUTIVE_RATE_LIMITS = 50
UNAVAILABLE_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
"""Waits between retries of a 5xx/timeout; one more failure after the last fails the attempt."""
STOP_POLL_SECONDS = 0.2
DELETE_BATCH_RECORDS = 500
LOG_EVERY_PAGES = 20
CREATED_AT_FIELDS = ("created_at", "createdAt")


class SyncContext(Protocol):
    """What the job system gives a handler (engine.jobs JobContext has these)."""

    def should_stop(self) -> bool: ...

    def log(self, message: str) -> None: ...


class SyncFailed(Exception):
    """The sync failed: the app refused it (see the data source's lastError)."""


class _Gone(Exception):
    """The data source was deleted while it was syncing."""


@dataclass
class _Run:
    """The progress of one sync, as kept in the data source's `currentSync`."""

    doc: dict[str, Any]
    resumed: bool = False
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    def add(self, key: str, amount: int) -> None:
        self.doc[key] = int(self.doc.get(key, 0)) + amount


def _new_run(source: DataSource, mode: SyncMode, job_id: str) -> dict[str, Any]:
    if source.kind is DataSourceKind.EVENT_PULL:
        since = source.high_water_mark or source.baseline_at
    else:
        since = source.high_water_mark if mode is SyncMode.INCREMENTAL else None
    generation = source.generation + 1 if mode is SyncMode.FULL else source.generation
    return {
        "mode": mode.value,
        "jobId": job_id,
        "phase": "listing",
        "since": since,
        "cursor": None,
        "generation": generation,
        "pages": 0,
        "recordsSeen": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "rateLimited": 0,
        "unavailable": 0,
        "resumes": 0,
        "maxUpdatedAt": source.high_water_mark,
        "startedAt": now(),
    }


def _later(a: str | None, b: Any) -> str | None:
    """The later of two timestamps as the app spells them (ISO 8601; compared as instants)."""
    if not isinstance(b, str) or not b:
        return a
    if a is None:
        return b
    try:
        return b if _instant(b) > _instant(a) else a
    except ValueError:
        return max(a, b)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _wait(seconds: float, ctx: SyncContext, sleep: Callable[[float], None]) -> bool:
    """Sleep `seconds` in slices, polling should_stop between them; False when asked to stop."""
    left = seconds
    while True:
        if ctx.should_stop():
            return False
        if left <= 0:
            return True
        step = min(left, STOP_POLL_SECONDS)
        sleep(step)
        left -= step


class _Syncer:
    def __init__(self, services: Services, source_doc: dict[str, Any], run: _Run, ctx: SyncContext):
        self.services = services
        self.doc = source_doc
        self.source = DataSource.from_document(source_doc)
        self.run = run
        self.ctx = ctx

    # --- progress -----------------------------------------------------------------------------

    def save(self, **extra: Any) -> None:
        if not sources_store.update(
            self.services.db, self.source.id, {"currentSync": self.run.doc, "updatedAt": now(), **extra}
        ):
            raise _Gone()

    # --- one page -----------------------------------------------------------------------------

    def process_page(self, records: list[Any], id_field: str, updated_field: str) -> None:
        """Store a page's records, firing created/updated (and deleted for tombstones) events."""
        run, source, db = self.run, self.source, self.services.db
        generation = int(run["generation"])
        by_id: dict[str, dict[str, Any]] = {}
        for record in records:
            if isinstance(record, dict) and record.get(id_field) not in (None, ""):
                by_id[str(record[id_field])] = record  # a record twice in a page: the last wins
        stored = records_store.find_many(db, [records_store.record_id(source.id, e) for e in by_id])
        inserts: list[dict[str, Any]] = []
        replaces: list[dict[str, Any]] = []
        unchanged: list[str] = []
        deletions: list[str] = []
        events: list[dict[str, Any]] = []
        timestamp = now()
        wanted = record_events.subscribed_changes(self.services, self.doc)
        for external_id, record in by_id.items():
            rid = records_store.record_id(source.id, external_id)
            old = stored.get(rid)
            run.doc["maxUpdatedAt"] = _later(run.doc.get("maxUpdatedAt"), record.get(updated_field))
            if record.get("deleted") is True:  # a tombstone (apps that list deletions)
                if old is not None:
                    deletions.append(rid)
                    events.append(
                        record_events.build_event(
                            self.doc,
                            external_id,
                            "deleted",
                            record,
                            old.get("hash", ""),
                            run["jobId"],
                            wanted,
                        )
                    )
                continue
            digest = record_events.record_hash(record)
            document = {
                "_id": rid,
                "dataSourceId": source.id,
                "externalId": external_id,
                "record": record,
                "hash": digest,
                "generation": generation,
                "updatedAt": record.get(updated_field),
                "syncedAt": timestamp,
            }
            if old is None:
                inserts.append(document)
                events.append(
                    record_events.build_event(
                        self.doc,
                        external_id,
                        self._change_of_new(record),
                        record,
                        digest,
                        run["jobId"],
                        wanted,
                    )
                )
            elif old.get("hash") != digest:
                replaces.append(document)
                events.append(
                    record_events.build_event(
                        self.doc, external_id, "updated", record, digest, run["jobId"], wanted
                    )
                )
            else:
                run.add("unchanged", 1)
                if old.get("generation") != generation:
                    unchanged.append(rid)
        # Events are recorded before the records change: a crash in between leaves them pending
        # (handed over by the next attempt), never lost; replaying the page records them once.
        new_events = record_events.record_events(self.services, events)
        records_store.insert_many(db, inserts)
        for document in replaces:
            records_store.replace(db, document)
        records_store.stamp_generation(db, unchanged, generation)
        records_store.delete_ids(db, deletions)
        record_events.hand_over(self.services, new_events)
        for event in new_events:
            run.add(event["change"], 1)
        run.add("recordsSeen", len(records))
        run.add("pages", 1)

    def _change_of_new(self, record: dict[str, Any]) -> str:
        """A record not stored yet: created, except for an event pull seeing an older record changed."""
        if self.source.kind is not DataSourceKind.EVENT_PULL or not self.source.baseline_at:
            return "created"
        for name in CREATED_AT_FIELDS:
            value = record.get(name)
            if isinstance(value, str):
                try:
                    return "created" if _instant(value) >= _instant(self.source.baseline_at) else "updated"
                except ValueError:
                    break
        return "created"

    # --- deletions of a full sync -------------------------------------------------------------

    def reconcile(self) -> bool:
        """Delete records the full listing did not see; False when asked to stop."""
        run, source, db = self.run, self.source, self.services.db
        generation = int(run["generation"])
        while True:
            if self.ctx.should_stop():
                return False
            stale = records_store.older_than_generation(db, source.id, generation, limit=DELETE_BATCH_RECORDS)
            if not stale:
                return True
            wanted = record_events.subscribed_changes(self.services, self.doc)
            events = [
                record_events.build_event(
                    self.doc,
                    d["externalId"],
                    "deleted",
                    d.get("record"),
                    d.get("hash", ""),
                    run["jobId"],
                    wanted,
                )
                for d in stale
            ]
            new_events = record_events.record_events(self.services, events)
            records_store.delete_ids(db, [d["_id"] for d in stale])
            record_events.hand_over(self.services, new_events)
            run.add("deleted", len(new_events))
            self.save()


def claim_sync(services: Services, data_source_id: str, job_id: str, mode: SyncMode) -> bool:
    """Take the data source's one-sync claim for job_id (state queued); False when another job has it."""
    return sources_store.claim(
        services.db,
        data_source_id,
        job_id,
        {"state": DataSourceState.QUEUED.value, "queuedMode": mode.value, "updatedAt": now()},
    )


def run_sync(
    services: Services,
    data_source_id: str,
    *,
    job_id: str,
    mode: SyncMode | str | None,
    ctx: SyncContext,
    sleep: Callable[[float], None] = time.sleep,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Run (or resume) one sync of a data source as job `job_id`; returns its summary.

    Returns {"status": "completed" | "stopped" | "skipped" | "gone", ...counts}. Raises SyncFailed
    when the app refuses the sync, and AppRateLimited/AppUnavailable when retries are exhausted;
    either way the claim is freed and the progress kept: the next sync resumes from the cursor.
    """
    db = services.db
    doc = sources_store.find_by_id(db, data_source_id)
    if doc is None:
        return {"status": "gone"}
    holder = doc.get("activeJobId")
    if holder not in (None, job_id):
        return {"status": "skipped", "reason": f"sync {holder} holds the data source"}
    if holder is None and not sources_store.claim(db, data_source_id, job_id, {}):
        return {"status": "skipped", "reason": "another sync took the data source"}
    source = DataSource.from_document(doc)
    requested = SyncMode(mode or doc.get("queuedMode") or SyncMode.INCREMENTAL.value)
    if source.kind is DataSourceKind.EVENT_PULL:
        requested = SyncMode.INCREMENTAL
    current = doc.get("currentSync")
    if current and (current.get("mode") == requested.value or requested is SyncMode.INCREMENTAL):
        run = _Run(dict(current), resumed=True)  # a crashed or stopped sync: go on from its cursor
        run.add("resumes", 1)
        run.doc["jobId"] = job_id
    else:
        run = _Run(_new_run(source, requested, job_id))
    syncer = _Syncer(services, doc, run, ctx)
    try:
        syncer.save(state=DataSourceState.SYNCING.value, lastError=None)
        record_events.hand_over_pending(services, data_source_id)
        ctx.log(
            f"{'resuming' if run.resumed else 'starting'} {run['mode']} sync of {source.collection} "
            f"at page {run['pages']}"
        )
        outcome = _list_and_store(services, syncer, ctx, sleep, session)
        if outcome == "stopped":
            syncer.save()
    except SyncFailed as error:
        _finish_failed(services, source, job_id, str(error), run)
        raise
    except (AppRateLimited, AppUnavailable) as error:
        # Retries exhausted: the job fails, the claim is freed, and `currentSync` stays, so the
        # next sync (due or requested) resumes from this cursor.
        _finish_failed(services, source, job_id, error.message, run)
        raise
    except _Gone:
        records_store.delete_for_source(db, data_source_id)  # deleted mid-sync: drop what this sync wrote
        return {"status": "gone"}
    if outcome == "stopped":
        sources_store.release(
            db, source.id, job_id, {"state": DataSourceState.IDLE.value, "updatedAt": now()}
        )
        return {"status": "stopped", **_counts(run.doc)}
    return _finish_completed(services, source, job_id, run)


def _list_and_store(
    services: Services,
    syncer: _Syncer,
    ctx: SyncContext,
    sleep: Callable[[float], None],
    session: requests.Session | None,
) -> str:
    from engine.domain import connections

    run, source = syncer.run, syncer.source
    try:
        connection = connections.get_connection_by_id(services, source.connection_id)
        bound = connections.bind(services, connection)
    except Exception as error:  # noqa: BLE001 - connection, integration or connector gone
        raise SyncFailed(f"the connection cannot be used: {error}") from error
    collection = bound.spec.data.get(source.collection)
    if collection is None:
        raise SyncFailed(f"connector {bound.spec.key} has no data collection {source.collection!r}")
    id_field = getattr(collection, "id_field", None) or "id"
    updated_field = getattr(collection, "updated_at_field", None) or "updated_at"
    own_session = session is None
    session = session or outbound_session(services.config)
    rate_limited = unavailable = 0
    try:
        while run.doc.get("phase") == "listing":
            try:
                for page in list_records(
                    bound.spec,
                    source.collection,
                    bound.credentials,
                    since=run["since"],
                    cursor=run["cursor"],
                    session=session,
                    page_size=source.page_size,
                    parameters=bound.parameters,
                    timeout_seconds=APP_TIMEOUT_SECONDS,
                    on_credentials_refreshed=lambda new: connections.persist_refreshed(services, bound, new),
                ):
                    syncer.process_page(page.records, id_field, updated_field)
                    run.doc["cursor"] = page.next_cursor
                    if page.next_cursor is None:
                        run.doc["phase"] = "reconciling" if run["mode"] == SyncMode.FULL.value else "done"
                    syncer.save()
                    rate_limited = unavailable = 0
                    if run["pages"] % LOG_EVERY_PAGES == 0:
                        ctx.log(f"{run['pages']} pages, {run['recordsSeen']} records")
                    if page.next_cursor is not None and ctx.should_stop():
                        return "stopped"
            except AppRateLimited as error:
                rate_limited += 1
                run.add("rateLimited", 1)
                if (
                    rate_limited > MAX_CONSECUTIVE_RATE_LIMITS
                    or error.retry_after_seconds > MAX_RETRY_AFTER_WAIT_SECONDS
                ):
                    syncer.save()
                    raise
                ctx.log(f"the app answered 429: waiting {error.retry_after_seconds:g} s")
                if not _wait(error.retry_after_seconds, ctx, sleep):
                    return "stopped"
            except AppUnavailable as error:
                unavailable += 1
                run.add("unavailable", 1)
                if unavailable > len(UNAVAILABLE_BACKOFF_SECONDS):
                    syncer.save()
                    raise
                delay = UNAVAILABLE_BACKOFF_SECONDS[unavailable - 1]
                ctx.log(f"the app is unavailable ({error.message}): retrying in {delay:g} s")
                if not _wait(delay, ctx, sleep):
                    return "stopped"
            except AppError as error:
                state = connections.state_after_error(error)
                if state is not None:
                    connections.set_state(services, source.connection_id, state, error.message)
                raise SyncFailed(error.message) from error
        if run.doc.get("phase") == "reconciling":
            if not syncer.reconcile():
                return "stopped"
            run.doc["phase"] = "done"
            syncer.save()
        return "completed"
    finally:
        if own_session:
            session.close()


def _counts(run: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "mode",
        "pages",
        "recordsSeen",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "rateLimited",
        "unavailable",
        "resumes",
        "cursor",
    )
    return {k: run.get(k) for k in keys}


def _finish_completed(services: Services, source: DataSource, job_id: str, run: _Run) -> dict[str, Any]:
    finished = now()
    last = {**run.doc, "status": "completed", "finishedAt": finished}
    fields: dict[str, Any] = {
        "lastSync": last,
        "lastSyncAt": finished,
        "lastError": None,
        "highWaterMark": run.doc.get("maxUpdatedAt"),
        "state": DataSourceState.IDLE.value,
        "activeJobId": None,
        "updatedAt": finished,
    }
    if run["mode"] == SyncMode.FULL.value:
        fields.update(generation=int(run["generation"]), lastFullSyncAt=finished)
    sources_store.update(
        services.db, source.id, fields, unset=["currentSync", "queuedMode"], only_if={"activeJobId": job_id}
    )
    return {"status": "completed", **_counts(run.doc)}


def _finish_failed(services: Services, source: DataSource, job_id: str, message: str, run: _Run) -> None:
    finished = now()
    sources_store.update(
        services.db,
        source.id,
        {
            "lastSync": {**run.doc, "status": "failed", "error": message, "finishedAt": finished},
            "lastError": message,
            "state": DataSourceState.FAILED.value,
            "activeJobId": None,
            "updatedAt": finished,
        },
        unset=["queuedMode"],
        only_if={"activeJobId": job_id},
    )
