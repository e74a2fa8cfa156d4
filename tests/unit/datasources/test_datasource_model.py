"""Pure parts of the data sources: record digests, event ids, timestamps, the public document."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.datasources.events import build_event, event_id, record_hash
from engine.datasources.model import DataSource, DataSourceKind, DataSourceState
from engine.datasources.sync import _later

SOURCE = {
    "_id": "dsrc_1",
    "workspaceId": "ws_1",
    "customerId": "cus_1",
    "connectionId": "con_1",
    "collection": "contacts",
}


def test_record_hash_ignores_key_order_and_sees_any_change():
    assert record_hash({"a": 1, "b": [1, 2]}) == record_hash({"b": [1, 2], "a": 1})
    assert record_hash({"a": 1}) != record_hash({"a": 2})
    assert record_hash({"a": 1}) != record_hash({"a": "1"})


def test_event_ids_are_deterministic_per_source_record_change_and_content():
    one = event_id("dsrc_1", "c1", "created", "h1")
    assert one == event_id("dsrc_1", "c1", "created", "h1")
    assert (
        len(
            {
                one,
                event_id("dsrc_2", "c1", "created", "h1"),
                event_id("dsrc_1", "c2", "created", "h1"),
                event_id("dsrc_1", "c1", "updated", "h1"),
                event_id("dsrc_1", "c1", "created", "h2"),
            }
        )
        == 5
    )


def test_events_no_flow_wants_are_recorded_unsubscribed():
    assert build_event(SOURCE, "c1", "created", {"id": "c1"}, "h", "job_1", None)["state"] == "pending"
    assert build_event(SOURCE, "c1", "created", {"id": "c1"}, "h", "job_1", {"created"})["state"] == "pending"
    assert (
        build_event(SOURCE, "c1", "updated", {"id": "c1"}, "h", "job_1", {"created"})["state"]
        == "unsubscribed"
    )


def test_later_compares_instants_not_spellings():
    assert _later(None, "2026-01-01T00:00:00Z") == "2026-01-01T00:00:00Z"
    assert _later("2026-01-01T01:00:00+01:00", "2026-01-01T00:30:00Z") == "2026-01-01T00:30:00Z"
    assert _later("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z") == "2026-01-02T00:00:00Z"
    assert _later("2026-01-02T00:00:00Z", None) == "2026-01-02T00:00:00Z"


def test_public_document_shows_progress_of_the_running_sync_else_the_last():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    source = DataSource(
        "dsrc_1",
        "ws_1",
        "cus_1",
        "con_1",
        "contacts",
        DataSourceKind.SYNC,
        60,
        3600,
        100,
        DataSourceState.SYNCING,
        at,
        at,
        current_sync={"pages": 3, "recordsSeen": 300, "cursor": "x"},
        last_sync={"pages": 9, "recordsSeen": 900, "cursor": None},
    )
    public = source.to_public()
    assert (public["pages"], public["recordsSeen"], public["lastCursor"]) == (3, 300, "x")
    assert DataSource.from_document(source.to_document()) == source
    idle = DataSource.from_document(
        {**source.to_document(), "currentSync": None, "state": "idle"}
    ).to_public()
    assert (idle["pages"], idle["recordsSeen"], idle["state"]) == (9, 900, "idle")
