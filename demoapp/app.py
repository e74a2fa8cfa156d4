"""The demo app's HTTP API (Flask app factory).

Auth on every API route (not on `/`, `/oauth/*`, `/_admin/*`): `X-Api-Key` header or `api_key`
query parameter, HTTP Basic, or `Authorization: Bearer` with an API key or an OAuth2 access token.
The `/_admin/*` routes are unauthenticated test hooks: never expose this app beyond localhost.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request

from demoapp.admin import register_admin
from demoapp.oauth import register_oauth
from demoapp.state import CONTACT_FIELDS, DemoState, parse_timestamp
from demoapp.webhooks import EVENT_TYPES, Dispatcher

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_OPEN_PREFIXES = ("/oauth/", "/_admin/")


def error_response(
    status: int, error: str, message: str, field: str | None = None, **headers: str
) -> Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def _encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}|{key[1]}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    updated_at, _, contact_id = raw.partition("|")
    if not updated_at or not contact_id:
        raise ValueError(cursor)
    return updated_at, contact_id


def _check_contact_fields(body: Any, *, creating: bool) -> tuple[dict[str, Any] | None, Response | None]:
    if not isinstance(body, dict):
        return None, error_response(400, "bad_request", "the body must be a JSON object")
    unknown = sorted(set(body) - set(CONTACT_FIELDS))
    if unknown:
        return None, error_response(422, "validation_error", f"unknown field {unknown[0]!r}", unknown[0])
    for name, value in body.items():
        if value is not None and not isinstance(value, str):
            return None, error_response(422, "validation_error", f"{name} must be a string", name)
    if creating and not body.get("email"):
        return None, error_response(422, "validation_error", "email is required", "email")
    if "email" in body and (not isinstance(body["email"], str) or "@" not in body["email"]):
        return None, error_response(422, "validation_error", "email is not an email address", "email")
    return body, None


def create_app(
    state: DemoState | None = None,
    *,
    fault_rate_429: float = 0.0,
    fault_rate_500: float = 0.0,
    seed: int | None = None,
) -> Flask:
    """Build the demo app over `state` (a fresh one by default). Faults are drawn from a RNG seeded
    with `seed`, so a test run is reproducible."""
    state = state or DemoState()
    state.fault_rate_429, state.fault_rate_500 = fault_rate_429, fault_rate_500
    state.rng.seed(seed)
    dispatcher = Dispatcher(state)
    app = Flask("demoapp")
    app.extensions["demoapp"] = {"state": state, "dispatcher": dispatcher}

    def authenticate() -> str | None:
        key = request.headers.get("X-Api-Key") or request.args.get("api_key")
        if key:
            return "api-key" if key in state.api_keys else None
        authorization = request.headers.get("Authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            known = state.users.get(user)
            return "basic" if known is not None and secrets.compare_digest(known, password) else None
        if scheme.lower() == "bearer" and value:
            if value in state.api_keys:
                return "bearer"
            with state.lock:
                expires_at = state.access_tokens.get(value)
            if expires_at is not None and expires_at > time.time():
                return "oauth2"
            g.token_expired = expires_at is not None
        return None

    @app.before_request
    def faults_and_auth() -> Response | None:
        if request.path == "/" or request.path.startswith(_OPEN_PREFIXES):
            return None
        with state.lock:
            state.stats["requests"] += 1
            forced = state.fail_next.popleft() if state.fail_next else None
            if forced is None:
                draw = state.rng.random()
                if draw < state.fault_rate_429:
                    forced = 429
                elif draw < state.fault_rate_429 + state.fault_rate_500:
                    forced = 500
            if forced == 429:
                state.stats["faults429"] += 1
            elif forced:
                state.stats["faults500"] += 1
            retry_after = state.retry_after_seconds
        if forced == 429:
            return error_response(429, "rate_limited", "slow down", **{"Retry-After": str(retry_after)})
        if forced:
            return error_response(forced, "server_error", "the demo app failed (injected fault)")
        g.auth_method = authenticate()
        if g.auth_method is None:
            expired = g.get("token_expired")
            return error_response(
                401,
                "invalid_token" if expired else "unauthorized",
                "the access token expired" if expired else "missing or invalid credentials",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"' if expired else "Bearer"},
            )
        return None

    @app.after_request
    def persist(response: Response) -> Response:
        if state.path and request.method in ("POST", "PATCH", "DELETE") and response.status_code < 400:
            state.save()
        return response

    @app.get("/")
    def health() -> Any:
        return {"app": "demo CRM", "ok": True}

    @app.get("/me")
    def me() -> Any:
        return {"authenticated": True, "method": g.auth_method}

    @app.get("/contacts")
    def list_contacts() -> Any:
        try:
            limit = int(request.args.get("limit", DEFAULT_PAGE_SIZE))
            if not 1 <= limit <= MAX_PAGE_SIZE:
                raise ValueError
        except ValueError:
            return error_response(
                400, "bad_request", f"limit must be an integer in 1..{MAX_PAGE_SIZE}", "limit"
            )
        since = request.args.get("updated_since")
        after = None
        try:
            since = parse_timestamp(since) if since else None
        except ValueError:
            return error_response(
                400, "bad_request", "updated_since must be an ISO 8601 timestamp", "updated_since"
            )
        if request.args.get("cursor"):
            try:
                after = _decode_cursor(request.args["cursor"])
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return error_response(400, "bad_request", "invalid cursor", "cursor")
        include_deleted = request.args.get("include_deleted", "false").lower() in ("1", "true", "yes")
        items, next_key = state.list_contacts(
            limit=limit, after=after, updated_since=since, include_deleted=include_deleted
        )
        return {"items": items, "nextCursor": _encode_cursor(next_key) if next_key else None}

    @app.post("/contacts")
    def create_contact() -> Any:
        fields, problem = _check_contact_fields(request.get_json(silent=True), creating=True)
        if problem:
            return problem
        record = state.create_contact(fields or {})
        dispatcher.publish("contact.created", record)
        return record, 201

    @app.get("/contacts/<contact_id>")
    def get_contact(contact_id: str) -> Any:
        record = state.get_contact(contact_id)
        return record if record else error_response(404, "not_found", f"no contact {contact_id}")

    @app.patch("/contacts/<contact_id>")
    def update_contact(contact_id: str) -> Any:
        fields, problem = _check_contact_fields(request.get_json(silent=True), creating=False)
        if problem:
            return problem
        record = state.update_contact(contact_id, fields or {})
        if record is None:
            return error_response(404, "not_found", f"no contact {contact_id}")
        dispatcher.publish("contact.updated", record)
        return record

    @app.delete("/contacts/<contact_id>")
    def delete_contact(contact_id: str) -> Any:
        tombstone = state.delete_contact(contact_id)
        if tombstone is None:
            return error_response(404, "not_found", f"no contact {contact_id}")
        dispatcher.publish("contact.deleted", tombstone)
        return "", 204

    @app.post("/webhooks")
    def subscribe() -> Any:
        body = request.get_json(silent=True) or {}
        url, events = body.get("url"), body.get("events", ["*"])
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return error_response(422, "validation_error", "url must be an http(s) URL", "url")
        if not isinstance(events, list) or not all(e in (*EVENT_TYPES, "*") for e in events):
            return error_response(
                422, "validation_error", f"events must be a list of {list(EVENT_TYPES)} or '*'", "events"
            )
        subscription: dict[str, Any] = {
            "id": uuid.uuid4().hex[:12],
            "url": url,
            "events": events,
            "secret": secrets.token_hex(16),
        }
        with state.lock:
            state.webhooks[subscription["id"]] = subscription
        return subscription, 201

    @app.get("/webhooks")
    def list_webhooks() -> Any:
        with state.lock:
            return {"items": [{k: v for k, v in w.items() if k != "secret"} for w in state.webhooks.values()]}

    @app.delete("/webhooks/<webhook_id>")
    def unsubscribe(webhook_id: str) -> Any:
        with state.lock:
            removed = state.webhooks.pop(webhook_id, None)
        return ("", 204) if removed else error_response(404, "not_found", f"no webhook {webhook_id}")

    register_oauth(app, state)
    register_admin(app, state, dispatcher)
    return app
