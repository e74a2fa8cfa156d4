"""ctx.http, runner side: performs a job's HTTP request against the connection's app only.

The job process has no network; it sends the request description over its channel and the
server performs it here, adding the connection's authentication, which the job never sees.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from engine.outbound import OutboundPolicy, guarded_session
from sandbox.errors import ErrorType
from sandbox.models import HttpContext

MAX_RESPONSE_BYTES = 20 * 1024 * 1024
"""A response body larger than this fails the ctx.http call (the job's memory is bounded too)."""
DEFAULT_REQUEST_TIMEOUT_SECONDS = 30.0
ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

_sessions: dict[OutboundPolicy, requests.Session] = {}


def _session(policy: OutboundPolicy) -> requests.Session:
    """One guarded session per policy (a runner has one), shared by its handler threads."""
    session = _sessions.get(policy)
    if session is None:
        session = _sessions.setdefault(policy, guarded_session(policy))
    return session


def _refuse(message: str, error_type: ErrorType = ErrorType.FORBIDDEN) -> dict[str, Any]:
    return {"error": {"type": str(error_type), "message": message}}


def perform(
    context: HttpContext | None,
    request: dict[str, Any],
    time_left_seconds: float,
    policy: OutboundPolicy | None = None,
) -> dict[str, Any]:
    """Perform one ctx.http request; returns {"response": {...}} or {"error": {type, message}}.

    `policy`: the addresses the request may connect to (default: the non-production policy)."""
    if context is None:
        return _refuse("this job has no connection: ctx.http is unavailable", ErrorType.RUNTIME_ERROR)
    method = str(request.get("method", "GET")).upper()
    if method not in ALLOWED_METHODS:
        return _refuse(f"HTTP method {method} is not allowed")
    url = (
        urljoin(context.base_url.rstrip("/") + "/", str(request.get("path", "")).lstrip("/"))
        if "://" not in str(request.get("path", ""))
        else str(request["path"])
    )
    parts = urlsplit(url)
    allowed = {host.lower() for host in context.allowed_hosts} or {urlsplit(context.base_url).hostname or ""}
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in allowed:
        return _refuse(
            f'requests to "{parts.hostname}" are forbidden: this connection may reach '
            f"{', '.join(sorted(allowed))}"
        )
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    headers.update(context.headers)  # the connection's auth wins over anything the code set
    timeout = min(
        float(request.get("timeout") or DEFAULT_REQUEST_TIMEOUT_SECONDS), max(0.1, time_left_seconds)
    )
    try:
        session = _session(policy or OutboundPolicy.from_settings(False, ()))
        with session.request(
            method,
            url,
            params=request.get("params"),
            headers=headers,
            json=request.get("json"),
            data=request.get("data"),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            body = b""
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    return _refuse(
                        f"the response is larger than {MAX_RESPONSE_BYTES} bytes", ErrorType.OUTPUT_LIMIT
                    )
            text = body.decode(response.encoding or "utf-8", errors="replace")
            return {
                "response": {
                    "status_code": response.status_code,
                    "headers": dict(response.headers),
                    "text": text,
                    "url": response.url,
                }
            }
    except requests.RequestException as error:
        return _refuse(f"HTTP request failed: {type(error).__name__}: {error}", ErrorType.RUNTIME_ERROR)
