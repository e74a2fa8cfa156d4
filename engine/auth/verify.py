"""Verify a request's bearer token and say who is calling (domain.md §4).

Order of checks, each failure a 401 with its reason: a token is present; its header names an
algorithm we accept (HS256, or RS256 when AUTH0_DOMAIN is set; `none` never); the claims say
which key signed it (platform admin: SECRET; workspace/customer: the workspace's secret; Auth0:
the domain's JWKS); the signature and expiry hold; the workspace exists.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt

from engine.auth.principal import Principal, Role
from engine.auth.tokens import PLATFORM_ADMIN_ROLE, TOKEN_ALGORITHM
from engine.domain import tenancy
from engine.errors import Unauthorized
from engine.services import Services

AUTH0_ALGORITHM = "RS256"
LEEWAY_SECONDS = 5
"""Clock skew tolerated on exp/iat between the minting machine and this one."""
CONSOLE_WORKSPACE_CLAIMS = ("workspaceKey", "https://integration-engine/workspaceKey")
VERIFIED_TOKEN_CACHE_SECONDS = tenancy.WORKSPACE_CACHE_SECONDS
"""How long a process reuses what a token it verified proves (never past the token's expiry).
No longer than the workspace and its secret are cached: a rotated secret takes as long either way."""
MAX_CACHED_TOKENS = 10_000
"""Verified tokens remembered per process; the cache is emptied when it reaches this size."""

_verified: dict[tuple[str, str], tuple[float, Principal]] = {}
_verified_lock = threading.Lock()
tenancy.on_clear_caches(_verified.clear)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; 401 when missing or malformed."""
    if not header:
        raise Unauthorized("missing token: send Authorization: Bearer <token>")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


def _decode(token: str, key: Any, algorithm: str, **options: Any) -> dict[str, Any]:
    try:
        return jwt.decode(
            token, key, algorithms=[algorithm], leeway=LEEWAY_SECONDS, options={"require": ["exp"]}, **options
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.MissingRequiredClaimError as error:
        raise Unauthorized(f"token is missing the {error.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("invalid token signature") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"invalid token: {error}") from None


def authenticate(services: Services, authorization: str | None) -> Principal:
    """The principal proven by an Authorization header value; Unauthorized (401) with the reason.

    A token verified here is remembered for VERIFIED_TOKEN_CACHE_SECONDS (or until it expires):
    checking a JWT costs more CPU than the rest of a small request (PyJWT parses it three times)."""
    token = bearer_token(authorization)
    cache_key = (services.db.name, token)
    hit = _verified.get(cache_key)
    if hit is not None and hit[0] > time.time():
        return hit[1]
    principal, expires_at = _verify(services, token)
    if expires_at is not None:
        with _verified_lock:
            if len(_verified) >= MAX_CACHED_TOKENS:
                _verified.clear()
            _verified[cache_key] = (min(expires_at, time.time() + VERIFIED_TOKEN_CACHE_SECONDS), principal)
    return principal


def _verify(services: Services, token: str) -> tuple[Principal, float | None]:
    """The principal a token proves, and until when that may be reused (None: not reused)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise Unauthorized("malformed token: not a JWT") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise Unauthorized("unsigned tokens (alg: none) are not accepted")
    if algorithm == AUTH0_ALGORITHM and services.config.auth0_domain:
        from engine.auth.auth0 import verify_console_token

        return verify_console_token(services, token, claims), None
    if algorithm != TOKEN_ALGORITHM:
        raise Unauthorized(f"token algorithm {algorithm} is not accepted")
    if claims.get("role") == PLATFORM_ADMIN_ROLE:
        verified = _decode(token, services.config.secret, TOKEN_ALGORITHM)
        return Principal(Role.PLATFORM_ADMIN, subject="platform-admin"), _expiry(verified)
    workspace_key = claims.get("workspaceKey")
    if not isinstance(workspace_key, str) or not workspace_key:
        raise Unauthorized("token has neither role platform-admin nor a workspaceKey claim")
    found = tenancy.workspace_with_secret(services, workspace_key)
    if found is None:
        raise Unauthorized(f"unknown workspace {workspace_key!r}")
    workspace, secret = found
    verified = _decode(token, secret, TOKEN_ALGORITHM)
    customer_internal_id = verified.get("customerId")
    if customer_internal_id is not None:
        if (
            not isinstance(customer_internal_id, str | int)
            or isinstance(customer_internal_id, bool)
            or str(customer_internal_id) == ""
        ):
            raise Unauthorized("customerId claim must be a non-empty string")
        customer = tenancy.ensure_customer(
            services,
            workspace.id,
            str(customer_internal_id),
            verified.get("name") if isinstance(verified.get("name"), str) else None,
        )
        principal = Principal(
            Role.CUSTOMER,
            workspace.id,
            workspace.key,
            customer.id,
            customer.internal_id,
            subject=customer.internal_id,
        )
        return principal, _expiry(verified)
    if verified.get("isAdmin") is True:
        principal = Principal(
            Role.WORKSPACE_ADMIN, workspace.id, workspace.key, subject=f"admin@{workspace.key}"
        )
        return principal, _expiry(verified)
    raise Unauthorized("workspace token has neither isAdmin: true nor a customerId claim")


def _expiry(claims: dict[str, Any]) -> float | None:
    """The verified `exp` claim as a Unix time (decode requires it), or None when it is not a number."""
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
