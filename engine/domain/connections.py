"""Connections: a customer's authenticated link to an integration (domain.md §3).

Credentials are validated against the connector's auth `fields` JSON Schema, encrypted at rest
(AES-GCM, bound to the connection id) and never returned. OAuth2 token fields (accessToken,
refreshToken, expiresAt, ...) are kept beside the customer's fields and refreshed by the
connector library; every refresh is persisted at once, so the refresh token is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine import crypto
from engine.connectors import AppError, ConnectorSpec, CredentialsRefreshFailed, execute_operation
from engine.connectors import oauth2 as oauth2_fields
from engine.connectors.spec import AuthType
from engine.domain.common import Page, iso, now, page_of
from engine.domain.integrations import (
    ConnectorVersion,
    Integration,
    connector_of,
    get_integration,
    get_integration_by_id,
)
from engine.domain.validation import check
from engine.errors import BadRequest, EngineError, NotFound, ValidationFailed
from engine.ids import new_id
from engine.outbound import outbound_session
from engine.services import Services
from engine.store import connections as connection_store

log = logging.getLogger(__name__)

TEST_TIMEOUT_SECONDS = 15.0
TOKEN_FIELDS = (
    oauth2_fields.ACCESS_TOKEN,
    oauth2_fields.REFRESH_TOKEN,
    oauth2_fields.EXPIRES_AT,
    oauth2_fields.TOKEN_TYPE,
    oauth2_fields.SCOPE,
)
MAX_CREDENTIAL_FIELDS = 50


class ConnectionState(StrEnum):
    READY = "READY"
    DISCONNECTED = "DISCONNECTED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Connection:
    id: str
    workspace_id: str
    customer_id: str
    customer_internal_id: str
    integration_id: str
    integration_key: str
    name: str
    state: ConnectionState
    credentials_envelope: dict
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> Connection:
        return cls(
            d["_id"],
            d["workspaceId"],
            d["customerId"],
            d.get("customerInternalId", ""),
            d["integrationId"],
            d["integrationKey"],
            d.get("name", ""),
            ConnectionState(d["state"]),
            d["credentials"],
            d["createdAt"],
            d["updatedAt"],
            d.get("lastError"),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "customerId": self.customer_id,
            "customerInternalId": self.customer_internal_id,
            "integrationId": self.integration_id,
            "integrationKey": self.integration_key,
            "name": self.name,
            "state": self.state.value,
            "credentials": self.credentials_envelope,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "lastError": self.last_error,
        }

    def to_public(self) -> dict[str, Any]:
        """Never the credentials."""
        return {
            "id": self.id,
            "integrationKey": self.integration_key,
            "customerId": self.customer_internal_id,
            "name": self.name,
            "state": self.state.value,
            "lastError": self.last_error,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    def credentials(self, services: Services) -> dict[str, Any]:
        return crypto.decrypt_json(services.config.encryption_secret, self.credentials_envelope, aad=self.id)


@dataclass(frozen=True)
class BoundConnection:
    """Everything needed to call the app for one connection: decrypted, in memory only."""

    connection: Connection
    integration: Integration
    connector: ConnectorVersion
    credentials: dict[str, Any]
    parameters: dict[str, Any]

    @property
    def spec(self) -> ConnectorSpec:
        assert self.connector.spec is not None
        return self.connector.spec

    def public_fields(self) -> dict[str, Any]:
        """The connection's non-secret fields (what custom code may see)."""
        secret = self.spec.auth.secret_fields()
        from engine.connectors.redact import is_secret_key

        return {
            k: v
            for k, v in self.credentials.items()
            if k not in secret and k not in TOKEN_FIELDS and not is_secret_key(k)
        }


def _validate_credentials(spec: ConnectorSpec, credentials: Any) -> dict[str, Any]:
    if not isinstance(credentials, dict) or len(credentials) > MAX_CREDENTIAL_FIELDS:
        raise ValidationFailed("credentials must be an object", field="credentials")
    fields = dict(credentials)
    tokens = {}
    if spec.auth.type is AuthType.OAUTH2:
        tokens = {k: fields.pop(k) for k in TOKEN_FIELDS if k in fields}
    check(spec.auth.fields, fields, prefix="credentials", quote_values=False)
    return {**fields, **tokens}


def _encrypt(services: Services, connection_id: str, credentials: dict[str, Any]) -> dict:
    return crypto.encrypt_json(services.config.encryption_secret, credentials, aad=connection_id)


def connect(
    services: Services,
    workspace_id: str,
    customer_id: str,
    customer_internal_id: str,
    integration_key: str,
    credentials: Any,
    name: str | None = None,
) -> tuple[Connection, bool]:
    """Create the customer's connection to an integration, or replace its credentials (reconnect).

    Returns (connection, created). The credentials are checked against the auth schema first;
    nothing is stored when they fail."""
    integration = get_integration(services, workspace_id, integration_key)
    connector = connector_of(services, integration)
    assert connector.spec is not None
    checked = _validate_credentials(connector.spec, credentials)
    state = ConnectionState.READY
    if (
        connector.spec.auth.type is AuthType.OAUTH2
        and not checked.get(oauth2_fields.ACCESS_TOKEN)
        and not checked.get(oauth2_fields.REFRESH_TOKEN)
    ):
        state = ConnectionState.DISCONNECTED
    existing = connection_store.find_for_customer(services.db, workspace_id, customer_id, integration.id)
    timestamp = now()
    if existing is not None:
        connection_store.update(
            services.db,
            existing["_id"],
            {
                "credentials": _encrypt(services, existing["_id"], checked),
                "state": state.value,
                "updatedAt": timestamp,
                "lastError": None,
                **({"name": name} if name else {}),
            },
        )
        return get_connection_by_id(services, existing["_id"]), False
    connection_id = new_id("con")
    connection = Connection(
        connection_id,
        workspace_id,
        customer_id,
        customer_internal_id,
        integration.id,
        integration.key,
        name or integration.key,
        state,
        _encrypt(services, connection_id, checked),
        timestamp,
        timestamp,
    )
    try:
        connection_store.insert(services.db, connection.to_document())
    except connection_store.ConnectionExists:
        # A concurrent connect won: answer with that one, then replace its credentials.
        return connect(
            services, workspace_id, customer_id, customer_internal_id, integration_key, credentials, name
        )
    return connection, True


def get_connection_by_id(services: Services, connection_id: str) -> Connection:
    document = connection_store.find_by_id(services.db, connection_id)
    if document is None:
        raise NotFound(f"no connection {connection_id!r}")
    return Connection.from_document(document)


def get_connection(
    services: Services, workspace_id: str, connection_id: str, customer_id: str | None = None
) -> Connection:
    """A connection of this workspace (and of this customer when customer_id is given), else 404."""
    document = connection_store.find_by_id(services.db, connection_id)
    if (
        document is None
        or document["workspaceId"] != workspace_id
        or (customer_id is not None and document["customerId"] != customer_id)
    ):
        raise NotFound(f"no connection {connection_id!r}")
    return Connection.from_document(document)


def find_customer_connection(
    services: Services, workspace_id: str, customer_id: str, integration: Integration
) -> Connection:
    document = connection_store.find_for_customer(services.db, workspace_id, customer_id, integration.id)
    if document is None:
        raise NotFound(f"the customer has no connection to integration {integration.key!r}: connect first")
    return Connection.from_document(document)


def list_connections(
    services: Services, workspace_id: str, *, customer_id: str | None, cursor: str | None, limit: int
) -> Page:
    return page_of(
        connection_store.list_page(
            services.db, workspace_id, customer_id=customer_id, after_id=cursor, limit=limit + 1
        ),
        limit,
        Connection.from_document,
    )


def delete_connection(services: Services, connection: Connection) -> None:
    """Delete the connection and what only it used: its data sources, event pulls and their records."""
    from engine.datasources.service import delete_for_connection

    delete_for_connection(services, connection.id)
    connection_store.delete(services.db, connection.id)


def bind(services: Services, connection: Connection) -> BoundConnection:
    """Load the integration, connector and decrypted secrets of a connection."""
    integration = get_integration_by_id(services, connection.integration_id)
    connector = connector_of(services, integration)
    return BoundConnection(
        connection, integration, connector, connection.credentials(services), integration.parameters(services)
    )


def persist_refreshed(services: Services, bound: BoundConnection, new_credentials: dict[str, Any]) -> None:
    """Store refreshed OAuth2 credentials at once (called by the connector library on each refresh)."""
    merged = dict(new_credentials)
    # The library keeps the refresh token; this is a second guard against ever dropping it.
    old_refresh = bound.credentials.get(oauth2_fields.REFRESH_TOKEN)
    if old_refresh and not merged.get(oauth2_fields.REFRESH_TOKEN):
        merged[oauth2_fields.REFRESH_TOKEN] = old_refresh
    bound.credentials.clear()
    bound.credentials.update(merged)
    connection_store.update(
        services.db,
        bound.connection.id,
        {
            "credentials": _encrypt(services, bound.connection.id, merged),
            "updatedAt": now(),
            "state": ConnectionState.READY.value,
            "lastError": None,
        },
    )


def set_state(
    services: Services, connection_id: str, state: ConnectionState, error: str | None = None
) -> None:
    connection_store.update(
        services.db, connection_id, {"state": state.value, "lastError": error, "updatedAt": now()}
    )


def state_after_error(error: EngineError) -> ConnectionState | None:
    """What an app error says about the connection (None: nothing, e.g. the app is just down)."""
    if isinstance(error, CredentialsRefreshFailed):
        return ConnectionState.DISCONNECTED
    if isinstance(error, AppError) and getattr(error, "app_status", 0) in (401, 403):
        return ConnectionState.ERROR
    return None


def test_connection(services: Services, connection: Connection) -> dict[str, Any]:
    """Run the connector's test operation; set the state from the answer; return a report."""
    bound = bind(services, connection)
    op_name = bound.spec.test
    if not op_name:
        raise BadRequest(f"connector {bound.spec.key} declares no test operation")
    with outbound_session(services.config) as session:
        try:
            result = execute_operation(
                bound.spec,
                op_name,
                {},
                bound.credentials,
                session=session,
                timeout_seconds=TEST_TIMEOUT_SECONDS,
                parameters=bound.parameters,
                on_credentials_refreshed=lambda new: persist_refreshed(services, bound, new),
            )
        except AppError as error:
            state = state_after_error(error)
            if state is not None:
                set_state(services, connection.id, state, error.message)
            return {
                "ok": False,
                "state": (state or connection.state).value,
                "error": error.to_document()["error"],
            }
    set_state(services, connection.id, ConnectionState.READY)
    return {
        "ok": True,
        "state": ConnectionState.READY.value,
        "appStatus": result.status,
        "durationMs": round(result.duration_ms, 1),
    }


# ---------------------------------------------------------------- OAuth2 authorization code

OAUTH_STATE_TTL_SECONDS = 600
"""How long the customer has to approve the connection at the app."""
OAUTH_CALLBACK_PATH = "/connections/oauth2/callback"
_STATE_PURPOSE = "oauth2-connect"


def oauth_redirect_uri(services: Services) -> str:
    return services.config.base_uri.rstrip("/") + OAUTH_CALLBACK_PATH


def authorization_url(services: Services, connection: Connection) -> str | None:
    """Where to send the customer to approve an OAuth2 connection (None for other auth types).

    `state` is a short-lived token signed with SECRET naming the connection: the callback needs
    no other authentication, and a forged or replayed-late state is refused."""
    import jwt

    from engine.connectors import oauth2

    bound = bind(services, connection)
    if bound.spec.auth.type is not AuthType.OAUTH2:
        return None
    import time as _time

    state = jwt.encode(
        {
            "purpose": _STATE_PURPOSE,
            "connectionId": connection.id,
            "exp": int(_time.time()) + OAUTH_STATE_TTL_SECONDS,
        },
        services.config.secret,
        algorithm="HS256",
    )
    return oauth2.authorization_url(
        bound.spec,
        redirect_uri=oauth_redirect_uri(services),
        state=state,
        parameters=bound.parameters,
        connection=bound.credentials,
    )


def complete_oauth(services: Services, code: str | None, state: str | None) -> Connection:
    """The callback: check `state`, exchange `code` for tokens, store them, set READY."""
    import jwt

    from engine.connectors import oauth2

    if not code or not state:
        raise BadRequest("code and state are required", field="code" if not code else "state")
    try:
        claims = jwt.decode(state, services.config.secret, algorithms=["HS256"])
    except jwt.InvalidTokenError as error:
        raise BadRequest(f"invalid or expired state: {error}", field="state") from None
    if claims.get("purpose") != _STATE_PURPOSE or not isinstance(claims.get("connectionId"), str):
        raise BadRequest("invalid state", field="state")
    connection = get_connection_by_id(services, claims["connectionId"])
    bound = bind(services, connection)
    with outbound_session(services.config) as session:
        try:
            credentials = oauth2.exchange_code(
                bound.spec,
                code=code,
                redirect_uri=oauth_redirect_uri(services),
                credentials=bound.credentials,
                parameters=bound.parameters,
                session=session,
            )
        except AppError as error:
            set_state(services, connection.id, ConnectionState.ERROR, error.message)
            raise
    persist_refreshed(services, bound, credentials)
    return get_connection_by_id(services, connection.id)
