"""/data-sources: a connection's collection synced into MongoDB, with its progress; sync now."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, validate_body
from engine.auth.principal import Role
from engine.datasources import service
from engine.datasources.model import (
    MAX_FULL_SYNC_INTERVAL_SECONDS,
    MAX_PAGE_SIZE_RECORDS,
    MAX_PULL_UPDATES_INTERVAL_SECONDS,
    MIN_FULL_SYNC_INTERVAL_SECONDS,
    MIN_PULL_UPDATES_INTERVAL_SECONDS,
)

blueprint = Blueprint("data_sources", __name__)

SYNC_PROGRESS = {
    "type": ["object", "null"],
    "properties": {
        "mode": {"enum": ["incremental", "full"]},
        "phase": {"type": "string"},
        "cursor": {"type": ["string", "null"]},
        "pages": {"type": "integer"},
        "recordsSeen": {"type": "integer"},
        "created": {"type": "integer"},
        "updated": {"type": "integer"},
        "unchanged": {"type": "integer"},
        "deleted": {"type": "integer"},
        "status": {"type": "string"},
        "jobId": {"type": "string"},
    },
}
DATA_SOURCE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": ["sync", "event-pull"]},
        "connectionId": {"type": "string"},
        "collection": {"type": "string"},
        "pullUpdatesIntervalSeconds": {"type": "integer"},
        "fullSyncIntervalSeconds": {"type": ["integer", "null"]},
        "pageSize": {"type": "integer"},
        "state": {"enum": ["idle", "queued", "syncing", "failed"]},
        "activeJobId": {"type": ["string", "null"]},
        "recordsSeen": {"type": "integer"},
        "pages": {"type": "integer"},
        "lastCursor": {"type": ["string", "null"]},
        "lastError": {"type": ["string", "null"]},
        "currentSync": SYNC_PROGRESS,
        "lastSync": SYNC_PROGRESS,
        "lastSyncAt": {"type": ["string", "null"], "format": "date-time"},
        "nextIncrementalAt": {"type": ["string", "null"], "format": "date-time"},
        "nextFullAt": {"type": ["string", "null"], "format": "date-time"},
    },
}
CREATE_DATA_SOURCE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connectionId", "collection"],
    "properties": {
        "connectionId": {"type": "string", "minLength": 1, "maxLength": 100},
        "collection": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "description": "a data collection of the connection's connector",
        },
        "kind": {"enum": ["sync", "event-pull"], "description": "event-pull: events only, from now on"},
        "pullUpdatesIntervalSeconds": {
            "type": "integer",
            "description": f"{MIN_PULL_UPDATES_INTERVAL_SECONDS}..{MAX_PULL_UPDATES_INTERVAL_SECONDS}",
        },
        "fullSyncIntervalSeconds": {
            "type": "integer",
            "description": f"{MIN_FULL_SYNC_INTERVAL_SECONDS}..{MAX_FULL_SYNC_INTERVAL_SECONDS}",
        },
        "pageSize": {"type": "integer", "description": f"records per page, 1..{MAX_PAGE_SIZE_RECORDS}"},
    },
}
SYNC_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"full": {"type": "boolean", "description": "a full sync (reconciles deletions)"}},
}
SYNC_ANSWER = {
    "type": "object",
    "properties": {"jobId": {"type": "string"}, "dataSourceId": {"type": "string"}},
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/data-sources")
@document(
    summary="Create a data source (the first sync, a full one, is due at once)",
    tags=["data-sources"],
    responses={201: DATA_SOURCE},
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
@validate_body(CREATE_DATA_SOURCE)
def create_data_source():
    source = service.create_data_source(_services(), current_principal(), body())
    return jsonify(source.to_public()), 201


@blueprint.get("/data-sources")
@document(
    summary="List data sources (a customer sees its own)",
    tags=["data-sources"],
    query=LIST_QUERY,
    responses={200: page_schema(DATA_SOURCE)},
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def list_data_sources():
    cursor, limit = list_args()
    page = service.list_data_sources(_services(), current_principal(), cursor=cursor, limit=limit)
    return jsonify(page.to_document())


@blueprint.get("/data-sources/<data_source_id>")
@document(summary="A data source with its sync progress", tags=["data-sources"], responses={200: DATA_SOURCE})
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def get_data_source(data_source_id: str):
    return jsonify(service.get_data_source(_services(), current_principal(), data_source_id).to_public())


@blueprint.post("/data-sources/<data_source_id>/sync")
@document(
    summary="Sync now (409 while a sync is queued or running)",
    tags=["data-sources"],
    responses={202: SYNC_ANSWER},
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
@validate_body(SYNC_REQUEST)
def sync_data_source(data_source_id: str):
    job_id = service.request_sync(
        _services(), current_principal(), data_source_id, full=bool(body().get("full", False))
    )
    return jsonify({"jobId": job_id, "dataSourceId": data_source_id}), 202


@blueprint.delete("/data-sources/<data_source_id>")
@document(summary="Delete a data source and its records", tags=["data-sources"], responses={204: None})
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def delete_data_source(data_source_id: str):
    service.delete_data_source(_services(), current_principal(), data_source_id)
    return "", 204
