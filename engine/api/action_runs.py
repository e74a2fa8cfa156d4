"""/action-runs: the log record of every action run (a customer sees its own)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from engine.api.actions import ACTION_RUN
from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, document, list_args, page_schema, query_params
from engine.auth.principal import Role
from engine.domain import action_runs

blueprint = Blueprint("action_runs", __name__)

RUNS_QUERY = {**LIST_QUERY, "actionKey": {"type": "string", "maxLength": 100}}


@blueprint.get("/action-runs/<run_id>")
@document(summary="Get an action run (poll it after a 202)", tags=["actions"], responses={200: ACTION_RUN})
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def get_action_run(run_id: str):
    services = current_app.extensions["engine.services"]
    return jsonify(action_runs.get_run(services, current_principal(), run_id).to_public())


@blueprint.get("/action-runs")
@document(
    summary="List action runs", tags=["actions"], query=RUNS_QUERY, responses={200: page_schema(ACTION_RUN)}
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def list_action_runs():
    cursor, limit = list_args()
    action_key = query_params(RUNS_QUERY).get("actionKey")
    services = current_app.extensions["engine.services"]
    return jsonify(
        action_runs.list_runs(
            services, current_principal(), action_key=action_key, cursor=cursor, limit=limit
        ).to_document()
    )
