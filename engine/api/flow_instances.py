"""/flow-instances: a flow enabled for one connection (customer), and running its api-trigger."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, query_params, validate_body
from engine.auth.principal import Role
from engine.flows import service

blueprint = Blueprint("flow_instances", __name__)

INSTANCE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "flowId": {"type": "string"},
        "connectionId": {"type": "string"},
        "customerId": {"type": ["string", "null"]},
        "enabled": {"type": "boolean"},
        "parameters": {"type": "object"},
        "triggerType": {"type": "string"},
        "schedule": {"type": "object"},
        "nextRunAt": {"type": ["string", "null"], "format": "date-time"},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
    },
}
CREATE_INSTANCE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["flowId", "connectionId"],
    "properties": {
        "flowId": {"type": "string", "minLength": 1, "description": "a flow's id or key"},
        "connectionId": {"type": "string", "minLength": 1},
        "parameters": {"type": "object"},
        "enabled": {"type": "boolean"},
    },
}
UPDATE_INSTANCE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"parameters": {"type": "object"}, "enabled": {"type": "boolean"}},
}
RUN_REQUEST = {"type": "object", "additionalProperties": False, "properties": {"input": {}}}
INSTANCE_QUERY = {
    **LIST_QUERY,
    "flowId": {"type": "string", "maxLength": 200},
    "connectionId": {"type": "string", "maxLength": 200},
}
ROLES = (Role.WORKSPACE_ADMIN, Role.CUSTOMER)


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/flow-instances")
@document(summary="Enable a flow for a connection", tags=["flow-instances"], responses={201: INSTANCE})
@require(*ROLES)
@validate_body(CREATE_INSTANCE)
def create_instance():
    instance = service.create_instance(_services(), current_principal(), body())
    return jsonify(instance.to_public()), 201


@blueprint.get("/flow-instances")
@document(
    summary="List flow instances (a customer sees its own)",
    tags=["flow-instances"],
    query=INSTANCE_QUERY,
    responses={200: page_schema(INSTANCE)},
)
@require(*ROLES)
def list_instances():
    cursor, limit = list_args()
    args = query_params(INSTANCE_QUERY)
    page = service.list_instances(
        _services(),
        current_principal(),
        flow_id=args.get("flowId"),
        connection_id=args.get("connectionId"),
        cursor=cursor,
        limit=limit,
    )
    return jsonify(page.to_document())


@blueprint.get("/flow-instances/<instance_id>")
@document(summary="Get a flow instance", tags=["flow-instances"], responses={200: INSTANCE})
@require(*ROLES)
def get_instance(instance_id: str):
    return jsonify(service.get_instance(_services(), current_principal(), instance_id).to_public())


@blueprint.patch("/flow-instances/<instance_id>")
@document(
    summary="Change a flow instance's parameters or enabled state",
    tags=["flow-instances"],
    responses={200: INSTANCE},
)
@require(*ROLES)
@validate_body(UPDATE_INSTANCE)
def update_instance(instance_id: str):
    return jsonify(service.update_instance(_services(), current_principal(), instance_id, body()).to_public())


@blueprint.post("/flow-instances/<instance_id>/enable")
@document(summary="Enable a flow instance", tags=["flow-instances"], responses={200: INSTANCE})
@require(*ROLES)
def enable_instance(instance_id: str):
    return jsonify(service.set_enabled(_services(), current_principal(), instance_id, True).to_public())


@blueprint.post("/flow-instances/<instance_id>/disable")
@document(
    summary="Disable a flow instance (its triggers stop starting runs)",
    tags=["flow-instances"],
    responses={200: INSTANCE},
)
@require(*ROLES)
def disable_instance(instance_id: str):
    return jsonify(service.set_enabled(_services(), current_principal(), instance_id, False).to_public())


@blueprint.delete("/flow-instances/<instance_id>")
@document(summary="Delete a flow instance", tags=["flow-instances"], responses={204: None})
@require(Role.WORKSPACE_ADMIN)
def delete_instance(instance_id: str):
    service.delete_instance(_services(), current_principal(), instance_id)
    return "", 204


@blueprint.post("/flow-instances/<instance_id>/run")
@document(
    summary="Run the flow's api-trigger with an input",
    tags=["flow-instances"],
    responses={202: {"type": "object", "description": "the queued flow run"}},
)
@require(*ROLES)
@validate_body(RUN_REQUEST)
def run_instance(instance_id: str):
    """Queues a flow run (202); 429 when the connection's run queue is full."""
    from engine.flows import runs  # the job system is loaded only by the views that need it

    services = _services()
    instance = service.get_instance(services, current_principal(), instance_id)
    job = runs.run_instance(services, instance, body().get("input"))
    return jsonify(runs.to_public(services, job, with_nodes=False)), 202
