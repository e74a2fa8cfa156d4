"""/flow-runs: runs of flows (jobs of kind "flow-run"), their node runs, and stopping them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, document, list_args, page_schema, query_params
from engine.auth.principal import Role
from engine.errors import ValidationFailed
from engine.flows import runs

blueprint = Blueprint("flow_runs", __name__)

NODE_SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "type": {"type": "string"},
        "status": {"enum": ["running", "completed", "failed", "skipped", "pending"]},
        "invocations": {"type": "integer"},
        "outputCount": {"type": "integer"},
        "errors": {"type": "array"},
        "startedAt": {"type": ["string", "null"]},
        "finishedAt": {"type": ["string", "null"]},
    },
}
NODE_RUN = {
    "type": "object",
    "properties": {
        **NODE_SUMMARY["properties"],
        "outputs": {"type": "array"},
        "outputBytes": {"type": "integer"},
        "logs": {"type": "array", "items": {"type": "string"}},
    },
}
FLOW_RUN = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "flowId": {"type": "string"},
        "flowInstanceId": {"type": "string"},
        "connectionId": {"type": "string"},
        "customerId": {"type": ["string", "null"]},
        "state": {"enum": ["queued", "running", "completed", "failed", "stopped"]},
        "launchedBy": {"enum": list(runs.LAUNCHED_BY)},
        "input": {},
        "result": {},
        "error": {"type": ["object", "null"]},
        "attempts": {"type": "integer"},
        "createdAt": {"type": "string"},
        "startedAt": {"type": ["string", "null"]},
        "finishedAt": {"type": ["string", "null"]},
        "nodes": {"type": "array", "items": NODE_SUMMARY},
    },
}
RUN_QUERY: dict[str, dict[str, Any]] = {
    **LIST_QUERY,
    "flowInstanceId": {"type": "string", "maxLength": 200},
    "state": {"enum": ["queued", "running", "completed", "failed", "stopped"]},
    "from": {"type": "string", "format": "date-time", "description": "created at or after (ISO 8601)"},
    "to": {"type": "string", "format": "date-time", "description": "created before (ISO 8601)"},
}
ROLES = (Role.WORKSPACE_ADMIN, Role.CUSTOMER)


def _services():
    return current_app.extensions["engine.services"]


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{name} must be an ISO 8601 date-time", field=name) from None
    if parsed.tzinfo is None:
        raise ValidationFailed(f"{name} must carry a timezone (e.g. Z)", field=name)
    return parsed


@blueprint.get("/flow-runs")
@document(
    summary="List flow runs (a customer sees its own), newest first",
    tags=["flow-runs"],
    query=RUN_QUERY,
    responses={200: page_schema(FLOW_RUN)},
)
@require(*ROLES)
def list_runs():
    cursor, limit = list_args()
    args = query_params(RUN_QUERY)
    services = _services()
    page = runs.list_runs(
        services,
        current_principal(),
        flow_instance_id=args.get("flowInstanceId"),
        state=args.get("state"),
        created_from=_time(args.get("from"), "from"),
        created_to=_time(args.get("to"), "to"),
        cursor=cursor,
        limit=limit,
    )
    return jsonify(
        {
            "items": [runs.to_public(services, job, with_nodes=False) for job in page.items],
            "cursor": page.cursor,
        }
    )


@blueprint.get("/flow-runs/<run_id>")
@document(summary="Get a flow run with its nodes' statuses", tags=["flow-runs"], responses={200: FLOW_RUN})
@require(*ROLES)
def get_run(run_id: str):
    services = _services()
    return jsonify(runs.to_public(services, runs.get_run(services, current_principal(), run_id)))


@blueprint.get("/flow-runs/<run_id>/nodes/<node_key>")
@document(
    summary="Get one node's run: status, outputs, logs, times", tags=["flow-runs"], responses={200: NODE_RUN}
)
@require(*ROLES)
def get_node_run(run_id: str, node_key: str):
    return jsonify(runs.get_node_run(_services(), current_principal(), run_id, node_key))


@blueprint.post("/flow-runs/<run_id>/stop")
@document(summary="Stop a queued or running flow run", tags=["flow-runs"], responses={202: FLOW_RUN})
@require(*ROLES)
def stop_run(run_id: str):
    """A running run stops between two nodes, within seconds; its state becomes `stopped`."""
    services = _services()
    job = runs.stop_run(services, current_principal(), run_id)
    return jsonify(runs.to_public(services, job, with_nodes=False)), 202
