"""OAuth2 for connections: the authorization URL, the code exchange and token refresh.

Credentials of an OAuth2 connection are the customer's fields plus the token fields below.
`expiresAt` is absolute (epoch seconds) so it survives being stored and read back later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import requests

from engine.connectors.errors import AppUnavailable, CredentialsRefreshFailed
from engine.connectors.redact import Redactor, excerpt
from engine.connectors.spec import AuthType, ConnectorSpec, OAuth2Spec
from engine.connectors.templates import render_tree

ACCESS_TOKEN = "accessToken"
REFRESH_TOKEN = "refreshToken"
EXPIRES_AT = "expiresAt"  # epoch seconds
TOKEN_TYPE = "tokenType"
SCOPE = "scope"
TOKEN_TIMEOUT_SECONDS = 30.0
BODY_EXCERPT_CHARS = 500


def _oauth2(spec: ConnectorSpec) -> OAuth2Spec:
    if spec.auth.type is not AuthType.OAUTH2 or spec.auth.oauth2 is None:
        raise ValueError(f"connector {spec.key} does not use oauth2")
    return spec.auth.oauth2


def _context(credentials: Mapping[str, Any], parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"connection": dict(credentials), "parameters": dict(parameters or {}), "input": {}}


def authorization_url(
    spec: ConnectorSpec,
    *,
    redirect_uri: str,
    state: str,
    parameters: Mapping[str, Any] | None = None,
    connection: Mapping[str, Any] | None = None,
) -> str:
    """The URL to send the customer to, to approve the connection (authorization-code grant)."""
    oauth = _oauth2(spec)
    context = _context(connection or {}, parameters)
    base = render_tree(oauth.authorize_uri, context)
    query = {
        "response_type": "code",
        "client_id": render_tree(oauth.client_id, context),
        "redirect_uri": redirect_uri,
        "state": state,
    }
    if oauth.scopes:
        query["scope"] = oauth.scope_separator.join(oauth.scopes)
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def _token_request(
    spec: ConnectorSpec,
    form: dict[str, str],
    credentials: Mapping[str, Any],
    parameters: Mapping[str, Any] | None,
    session: requests.Session,
    timeout_seconds: float,
) -> dict[str, Any]:
    oauth = _oauth2(spec)
    context = _context(credentials, parameters)
    client_id = str(render_tree(oauth.client_id, context))
    client_secret = str(render_tree(oauth.client_secret, context))
    auth = None
    if oauth.client_auth == "basic":
        auth = (client_id, client_secret)
    else:
        form = {**form, "client_id": client_id, "client_secret": client_secret}
    redactor = Redactor.for_connection(spec.auth.fields, {**credentials, **form}, parameters)
    try:
        response = session.post(
            render_tree(oauth.token_uri, context),
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=timeout_seconds,
        )
    except requests.RequestException as error:
        raise AppUnavailable(0, f"token endpoint unreachable: {redactor.text(str(error))}")
    body_text = excerpt(response.text, redactor, max_chars=BODY_EXCERPT_CHARS)
    if response.status_code >= 500:
        raise AppUnavailable(response.status_code, "token endpoint failed", body_text)
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict) or not body.get("access_token"):
        reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
        raise CredentialsRefreshFailed(
            response.status_code, f"the app refused the token request: {reason or response.reason}", body_text
        )
    return body


def _merge_tokens(credentials: Mapping[str, Any], token: Mapping[str, Any], now: float) -> dict[str, Any]:
    merged = dict(credentials)
    merged[ACCESS_TOKEN] = token["access_token"]
    merged[TOKEN_TYPE] = token.get("token_type", "Bearer")
    # Providers may omit the refresh token on refresh: keep the one we have, never drop it.
    if token.get("refresh_token"):
        merged[REFRESH_TOKEN] = token["refresh_token"]
    if token.get("expires_in") is not None:
        merged[EXPIRES_AT] = now + float(token["expires_in"])
    else:
        merged.pop(EXPIRES_AT, None)
    if token.get("scope"):
        merged[SCOPE] = token["scope"]
    return merged


def exchange_code(
    spec: ConnectorSpec,
    *,
    code: str,
    redirect_uri: str,
    credentials: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    session: requests.Session,
    now: float | None = None,
    timeout_seconds: float = TOKEN_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Exchange an authorization code for tokens; return the credentials with the token fields set."""
    now = time.time() if now is None else now
    token = _token_request(
        spec,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        credentials,
        parameters,
        session,
        timeout_seconds,
    )
    return _merge_tokens(credentials, token, now)


def refresh_credentials(
    credentials: Mapping[str, Any],
    spec: ConnectorSpec,
    session: requests.Session,
    now: float | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    timeout_seconds: float = TOKEN_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Refresh the access token now. Raises CredentialsRefreshFailed when the app refuses."""
    now = time.time() if now is None else now
    refresh_token = credentials.get(REFRESH_TOKEN)
    if not refresh_token or not _oauth2(spec).refresh:
        raise CredentialsRefreshFailed(401, "the access token expired and cannot be refreshed: reconnect")
    token = _token_request(
        spec,
        {"grant_type": "refresh_token", "refresh_token": str(refresh_token)},
        credentials,
        parameters,
        session,
        timeout_seconds,
    )
    return _merge_tokens(credentials, token, now)


def needs_refresh(credentials: Mapping[str, Any], spec: ConnectorSpec, now: float) -> bool:
    """Whether the access token is missing or within the spec's margin of its expiry."""
    if spec.auth.type is not AuthType.OAUTH2:
        return False
    if not credentials.get(ACCESS_TOKEN):
        return True
    expires_at = credentials.get(EXPIRES_AT)
    if expires_at is None:
        return False
    return float(expires_at) - now <= _oauth2(spec).refresh_before_expiry_seconds


def refresh_if_needed(
    credentials: Mapping[str, Any],
    spec: ConnectorSpec,
    session: requests.Session,
    now: float | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    timeout_seconds: float = TOKEN_TIMEOUT_SECONDS,
) -> dict[str, Any] | None:
    """New credentials when the access token is near expiry (the caller must persist them), else None."""
    now = time.time() if now is None else now
    if not needs_refresh(credentials, spec, now):
        return None
    return refresh_credentials(
        credentials, spec, session, now, parameters=parameters, timeout_seconds=timeout_seconds
    )
