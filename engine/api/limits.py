"""/limits: workspace limits (platform admin) and per-customer limits (workspace admin), and the
API rate limits, checked before every authenticated request when ENABLE_LIMITS is on."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request

from engine.api.auth import current_principal, require
from engine.api.schema import document
from engine.auth.principal import Role
from engine.auth.verify import authenticate
from engine.errors import BadRequest, EngineError
from engine.limits import service
from engine.limits.model import SPECS
from engine.limits.rate import check_rate_limit

blueprint = Blueprint("limits", __name__)

LIMITS = {
    "type": "object",
    "properties": {
        "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
        "overrides": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}},
    },
}
LIMITS_BODY = {"type": "object", "properties": {name: {"type": ["integer", "null"]} for name in SPECS}}


def _services():
    return current_app.extensions["engine.services"]


def _json_body():
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("the body must be a JSON object of limit names to whole numbers", field="body")
    return data


@blueprint.get("/limits/workspaces/<key>")
@document(summary="A workspace's limits", tags=["limits"], responses={200: LIMITS})
@require(Role.PLATFORM_ADMIN)
def get_workspace_limits(key: str):
    return jsonify(service.workspace_limits(_services(), key))


@blueprint.put("/limits/workspaces/<key>")
@document(
    summary="Set a workspace's limits (null removes an override)", tags=["limits"], responses={200: LIMITS}
)
@require(Role.PLATFORM_ADMIN)
def put_workspace_limits(key: str):
    return jsonify(service.put_workspace_limits(_services(), key, _json_body()))


@blueprint.get("/limits/customers/<customer_id>")
@document(summary="A customer's limits", tags=["limits"], responses={200: LIMITS})
@require(Role.WORKSPACE_ADMIN)
def get_customer_limits(customer_id: str):
    return jsonify(service.customer_limits(_services(), current_principal().workspace, customer_id))


@blueprint.put("/limits/customers/<customer_id>")
@document(
    summary="Set a customer's per-customer limits (null removes an override)",
    tags=["limits"],
    responses={200: LIMITS},
)
@require(Role.WORKSPACE_ADMIN)
def put_customer_limits(customer_id: str):
    return jsonify(
        service.put_customer_limits(_services(), current_principal().workspace, customer_id, _json_body())
    )


def _rate_limit() -> None:
    services = _services()
    header = request.headers.get("Authorization")
    if not services.config.enable_limits or not header:
        return
    try:
        principal = authenticate(services, header)
    except EngineError:
        return  # the view's @require answers 401 with the reason
    check_rate_limit(services, principal)


def init_app(app: Flask) -> None:
    """Check the API rate limits before each request (ENABLE_LIMITS)."""
    app.before_request(_rate_limit)
