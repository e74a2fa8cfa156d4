"""Verify a request's bearer token and say who is calling (domain.md §4).

Order of checks, each failure a 401 with its reason: a token is present; its header names an
algorithm we accept (HS256, or RS256 when AUTH0_DOMAIN is set; `none` never); the claims say
which key signed it (platform admin: SECRET; workspace/customer: the workspace's secret; Auth0:
the domain's JWKS); the signature and expiry hold; the workspace exists.
"""

from __future__ import annotations

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
    """The principal proven by an Authorization header value; Unauthorized (401) with the reason."""
    token = bearer_token(authorization)
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

        return verify_console_token(services, token, claims)
    if algorithm != TOKEN_ALGORITHM:
        raise Unauthorized(f"token algorithm {algorithm} is not accepted")
    if claims.get("role") == PLATFORM_ADMIN_ROLE:
        _decode(token, services.config.secret, TOKEN_ALGORITHM)
        return Principal(Role.PLATFORM_ADMIN, subject="platform-admin")
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
        return Principal(
            Role.CUSTOMER,
            workspace.id,
            workspace.key,
            customer.id,
            customer.internal_id,
            subject=customer.internal_id,
        )
    if verified.get("isAdmin") is True:
        return Principal(Role.WORKSPACE_ADMIN, workspace.id, workspace.key, subject=f"admin@{workspace.key}")
    raise Unauthorized("workspace token has neither isAdmin: true nor a customerId claim")
