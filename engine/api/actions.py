"""/actions: operations on an integration, defined by workspace admins and run as instant tasks."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, query_params, validate_body
from engine.auth.principal import Role
from engine.domain import action_runs, actions
from engine.domain.common import KEY_PATTERN

blueprint = Blueprint("actions", __name__)

TEMPLATE = {
    "description": "a template: strings may hold {{ input.x }}, {{ connection.y }}, {{ parameters.z }}"
}
OPERATION: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "method", "path"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "http"},
                "method": {"enum": list(actions.HTTP_METHODS)},
                "path": {"type": "string", **TEMPLATE},
                "query": {"type": "object", **TEMPLATE},
                "headers": {"type": "object", **TEMPLATE},
                "body": TEMPLATE,
                "bodyType": {"enum": ["json", "form"]},
                "response": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"output": {"type": "string"}},
                },
            },
        },
        {
            "type": "object",
            "required": ["type", "name"],
            "additionalProperties": False,
            "properties": {"type": {"const": "connector"}, "name": {"type": "string", "minLength": 1}},
        },
        {
            "type": "object",
            "required": ["type", "code"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "python"},
                "code": {"type": "string", "minLength": 1, "maxLength": 200_000},
            },
        },
        {
            "type": "object",
            "required": ["type", "output"],
            "additionalProperties": False,
            "properties": {"type": {"const": "transform"}, "output": TEMPLATE},
        },
    ],
}
ACTION = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "key": {"type": "string"},
        "name": {"type": "string"},
        "integrationKey": {"type": "string"},
        "operation": {"type": "object"},
        "inputSchema": {"type": ["object", "null"]},
        "createdAt": {"type": "string", "format": "date-time"},
    },
}
CREATE_ACTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "integrationKey", "operation"],
    "properties": {
        "key": {"type": "string", "pattern": KEY_PATTERN},
        "name": {"type": "string", "maxLength": 200},
        "integrationKey": {"type": "string", "pattern": KEY_PATTERN},
        "operation": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": list(actions.OPERATION_TYPES)}},
        },
        "inputSchema": {"type": "object"},
    },
}
RUN_ACTION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "input": {"description": "checked against the action's inputSchema"},
        "connectionId": {
            "type": "string",
            "maxLength": 100,
            "description": "required for workspace admins; customers default to theirs",
        },
    },
}
RUN_QUERY = {
    "waitSeconds": {
        "type": "integer",
        "minimum": 0,
        "maximum": 30,
        "description": "how long to wait for the answer before a 202 (default 10)",
    }
}
ACTION_RUN = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "actionKey": {"type": "string"},
        "connectionId": {"type": ["string", "null"]},
        "state": {"enum": ["queued", "running", "completed", "failed"]},
        "output": {},
        "error": {"type": "object"},
        "durationMs": {"type": ["number", "null"]},
        "request": {"type": ["object", "null"]},
        "response": {"type": ["object", "null"]},
        "logs": {"type": "string"},
        "createdAt": {"type": "string"},
        "finishedAt": {"type": ["string", "null"]},
    },
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/actions")
@document(
    summary="Define an action",
    tags=["actions"],
    responses={201: ACTION},
    description="operation: " + "; ".join(f"{o['properties']['type']['const']}" for o in OPERATION["oneOf"]),
)
@require(Role.WORKSPACE_ADMIN)
@validate_body(CREATE_ACTION)
def create_action():
    data = body()
    from engine.api.schema import check

    check(
        OPERATION["oneOf"][actions.OPERATION_TYPES.index(data["operation"]["type"])],
        data["operation"],
        prefix="operation",
    )
    action = actions.create_action(
        _services(),
        current_principal().workspace,
        data["key"],
        data["integrationKey"],
        data["operation"],
        data.get("inputSchema"),
        data.get("name"),
    )
    return jsonify(action.to_public()), 201


@blueprint.get("/actions")
@document(summary="List actions", tags=["actions"], query=LIST_QUERY, responses={200: page_schema(ACTION)})
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def list_actions():
    cursor, limit = list_args()
    return jsonify(
        actions.list_actions(
            _services(), current_principal().workspace, cursor=cursor, limit=limit
        ).to_document()
    )


@blueprint.get("/actions/<key>")
@document(summary="Get an action", tags=["actions"], responses={200: ACTION})
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def get_action(key: str):
    return jsonify(actions.get_action(_services(), current_principal().workspace, key).to_public())


@blueprint.delete("/actions/<key>")
@document(summary="Delete an action", tags=["actions"], responses={204: None})
@require(Role.WORKSPACE_ADMIN)
def delete_action(key: str):
    actions.delete_action(_services(), current_principal().workspace, key)
    return "", 204


@blueprint.post("/actions/<key>/run")
@document(
    summary="Run an action",
    tags=["actions"],
    query=RUN_QUERY,
    responses={200: ACTION_RUN, 202: ACTION_RUN, 502: {"type": "object"}},
    description="Runs on the instant queue and waits up to ACTION_RUN_WAIT_SECONDS: 200 with the output, "
    "202 with the run to poll at GET /action-runs/{id}, or the app's error (e.g. 502).",
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
@validate_body(RUN_ACTION)
def run_action(key: str):
    data = body()
    services = _services()
    wait = float(query_params(RUN_QUERY).get("waitSeconds", action_runs.ACTION_RUN_WAIT_SECONDS))
    deadline = time.monotonic() + wait
    started = action_runs.start_run(
        services, current_principal(), key, data.get("input", {}), data.get("connectionId"), wait_seconds=wait
    )
    run = action_runs.wait_for_run(
        services, started.run.id, deadline - time.monotonic(), pending=started.document, signal=started.signal
    )
    if run.state is action_runs.RunState.COMPLETED:
        return jsonify(run.to_public()), 200
    if run.state is action_runs.RunState.FAILED:
        error = dict(run.error or {})
        status = int(error.pop("status", 500) or 500)
        return jsonify({"error": {**error, "actionRunId": run.id}}), status
    return jsonify(run.to_public()), 202
