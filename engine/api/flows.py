"""/flows: flow definitions of a workspace (workspace admins). Validated on save: nothing invalid
is stored, and a 400 names the node and field of the problem."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, validate_body
from engine.auth.principal import Role
from engine.flows import service

blueprint = Blueprint("flows", __name__)

NODE = {
    "type": "object",
    "required": ["key", "type"],
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "type": {
            "type": "string",
            "description": "run-action | http-request | run-python | transform-data | filter | for-each",
        },
        "config": {"type": "object"},
        "onError": {"enum": ["stop", "continue"]},
    },
}
TRIGGER = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "key": {"type": "string", "default": "trigger"},
        "type": {
            "type": "string",
            "description": "api-trigger | schedule-trigger | app-event-trigger | "
            "data-record-created-trigger | data-record-updated-trigger | "
            "data-record-deleted-trigger",
        },
        "config": {
            "type": "object",
            "description": "schedule: {cron, timezone}; app-event: {eventType}; "
            "data-record: {dataSource, webhookEvents}; api: {inputSchema}",
        },
    },
}
LINK = {
    "type": "object",
    "required": ["from", "to"],
    "properties": {
        "from": {"type": "string"},
        "to": {"type": "string"},
        "filter": {"type": "object", "description": "{match: all|any, conditions: [{value, operator, to}]}"},
    },
}
FLOW_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["key", "trigger"],
    "properties": {
        "key": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string", "maxLength": 200},
        "trigger": TRIGGER,
        "nodes": {"type": "array", "items": NODE},
        "links": {"type": "array", "items": LINK},
    },
}
FLOW_UPDATE = {**FLOW_BODY, "required": ["trigger"]}
FLOW = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        **FLOW_BODY["properties"],
        "version": {"type": "integer"},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
    },
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/flows")
@document(summary="Create a flow", tags=["flows"], responses={201: FLOW})
@require(Role.WORKSPACE_ADMIN)
@validate_body(FLOW_BODY)
def create_flow():
    """A trigger, nodes and links; 400 naming the node and field when the graph is invalid."""
    flow = service.create_flow(_services(), current_principal().workspace, body())
    return jsonify(flow.to_public()), 201


@blueprint.get("/flows")
@document(summary="List flows", tags=["flows"], query=LIST_QUERY, responses={200: page_schema(FLOW)})
@require(Role.WORKSPACE_ADMIN)
def list_flows():
    cursor, limit = list_args()
    return jsonify(
        service.list_flows(
            _services(), current_principal().workspace, cursor=cursor, limit=limit
        ).to_document()
    )


@blueprint.get("/flows/<flow_id>")
@document(summary="Get a flow by id or key", tags=["flows"], responses={200: FLOW})
@require(Role.WORKSPACE_ADMIN)
def get_flow(flow_id: str):
    return jsonify(service.get_flow(_services(), current_principal().workspace, flow_id).to_public())


@blueprint.put("/flows/<flow_id>")
@document(summary="Replace a flow's definition", tags=["flows"], responses={200: FLOW})
@require(Role.WORKSPACE_ADMIN)
@validate_body(FLOW_UPDATE)
def update_flow(flow_id: str):
    """Validated like a new flow; its instances take the new trigger; running runs are unaffected."""
    flow = service.update_flow(_services(), current_principal().workspace, flow_id, body())
    return jsonify(flow.to_public())


@blueprint.delete("/flows/<flow_id>")
@document(summary="Delete a flow and its instances", tags=["flows"], responses={204: None})
@require(Role.WORKSPACE_ADMIN)
def delete_flow(flow_id: str):
    service.delete_flow(_services(), current_principal().workspace, flow_id)
    return "", 204
