"""External events in: `POST /webhooks/{integrationKey}/{connectionId}` (external apps) and
`POST /app-events/{eventType}` (the workspace's own app). Each is stored, then answered 202; a
queued job matches it to flow instances. Too large or malformed: 4xx, nothing stored or queued."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from engine.api.auth import current_principal, require
from engine.api.schema import document
from engine.auth.principal import Role
from engine.errors import PayloadTooLarge
from engine.flows import events

blueprint = Blueprint("webhooks", __name__)

ACCEPTED = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "source": {"type": "string"},
        "eventType": {"type": "string"},
        "state": {"type": "string"},
        "receivedAt": {"type": "string", "format": "date-time"},
    },
}


def _services():
    return current_app.extensions["engine.services"]


def _raw_body() -> bytes:
    if request.content_length is not None and request.content_length > events.MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"the event body is larger than {events.MAX_EVENT_BYTES} bytes")
    return request.get_data(cache=False)


@blueprint.post("/webhooks/<integration_key>/<connection_id>")
@document(
    summary="Receive a webhook from an external app for one connection",
    tags=["webhooks"],
    responses={202: ACCEPTED},
)
def receive_webhook(integration_key: str, connection_id: str):
    """Unauthenticated (external apps call it); the event type is the body's `type` or a header."""
    event = events.receive_webhook(_services(), integration_key, connection_id, _raw_body(), request.headers)
    return jsonify(events.to_public(event)), 202


@blueprint.post("/app-events/<event_type>")
@document(summary="Receive an event of the workspace's own app", tags=["webhooks"], responses={202: ACCEPTED})
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def receive_app_event(event_type: str):
    """A customer token starts only that customer's flow instances; a workspace token, all."""
    event = events.receive_app_event(_services(), current_principal(), event_type, _raw_body())
    return jsonify(events.to_public(event)), 202
