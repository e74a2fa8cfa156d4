"""OAuth2 for the demo app: authorization-code and refresh-token grants.

`/oauth/authorize` approves at once (there is no user to ask) and redirects with a code.
Access tokens live `state.access_token_ttl_seconds`, so tests can make them short. Refresh
tokens are rotated only when `state.rotate_refresh_tokens` is set; otherwise the token answer
to a refresh carries no refresh_token, as many real providers do.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, redirect, request

from demoapp.state import DemoState

AUTHORIZATION_CODE_TTL_SECONDS = 600


def _oauth_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    return response


def _client_credentials() -> tuple[str | None, str | None]:
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            return client_id, secret
        except (binascii.Error, UnicodeDecodeError):
            return None, None
    return request.form.get("client_id"), request.form.get("client_secret")


def issue_tokens(state: DemoState, client_id: str, *, with_refresh_token: bool) -> dict[str, Any]:
    """Mint an access token (and a refresh token) for a client; caller holds no lock."""
    access_token = secrets.token_urlsafe(24)
    answer: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": state.access_token_ttl_seconds,
        "scope": "contacts",
    }
    with state.lock:
        state.access_tokens[access_token] = time.time() + state.access_token_ttl_seconds
        if with_refresh_token:
            refresh_token = secrets.token_urlsafe(32)
            state.refresh_tokens[refresh_token] = client_id
            answer["refresh_token"] = refresh_token
    return answer


def register_oauth(app: Flask, state: DemoState) -> None:
    """Add `/oauth/authorize` and `/oauth/token` to the app."""

    @app.get("/oauth/authorize")
    def authorize() -> Any:
        client_id, redirect_uri = request.args.get("client_id"), request.args.get("redirect_uri")
        if request.args.get("response_type") != "code":
            return _oauth_error(400, "unsupported_response_type", "response_type must be code")
        if client_id not in state.oauth_clients:
            return _oauth_error(400, "invalid_client", "unknown client_id")
        if not redirect_uri or not redirect_uri.startswith(("http://", "https://")):
            return _oauth_error(400, "invalid_request", "redirect_uri must be an http(s) URL")
        code = secrets.token_urlsafe(16)
        with state.lock:
            state.codes[code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "expires_at": time.time() + AUTHORIZATION_CODE_TTL_SECONDS,
            }
        query = {"code": code}
        if request.args.get("state") is not None:
            query["state"] = request.args["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return redirect(f"{redirect_uri}{separator}{urlencode(query)}", code=302)

    @app.post("/oauth/token")
    def token() -> Any:
        client_id, client_secret = _client_credentials()
        known = state.oauth_clients.get(client_id or "")
        if known is None or not secrets.compare_digest(known, client_secret or ""):
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            with state.lock:
                grant = state.codes.pop(request.form.get("code", ""), None)  # codes are single-use
            if (
                grant is None
                or grant["expires_at"] < time.time()
                or grant["client_id"] != client_id
                or grant["redirect_uri"] != request.form.get("redirect_uri")
            ):
                return _oauth_error(
                    400, "invalid_grant", "the code is invalid, expired or for another client"
                )
            return issue_tokens(state, client_id or "", with_refresh_token=True)
        if grant_type == "refresh_token":
            refresh_token = request.form.get("refresh_token", "")
            with state.lock:
                owner = state.refresh_tokens.get(refresh_token)
                if owner is not None and state.rotate_refresh_tokens:
                    del state.refresh_tokens[refresh_token]
            if owner != client_id:
                return _oauth_error(400, "invalid_grant", "the refresh token is invalid")
            return issue_tokens(state, client_id or "", with_refresh_token=state.rotate_refresh_tokens)
        return _oauth_error(
            400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
        )
