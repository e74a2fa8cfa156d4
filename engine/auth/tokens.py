"""Mint and read the engine's HS256 tokens (domain.md §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

TOKEN_ALGORITHM = "HS256"
DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600
PLATFORM_ADMIN_ROLE = "platform-admin"


def mint_platform_admin_token(
    secret: str, *, ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS, now: datetime | None = None
) -> str:
    """A platform-admin token signed with SECRET."""
    issued = now or datetime.now(UTC)
    claims = {"role": PLATFORM_ADMIN_ROLE, "iat": issued, "exp": issued + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def mint_workspace_token(
    workspace_key: str,
    workspace_secret: str,
    *,
    customer_id: str | None = None,
    name: str | None = None,
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    now: datetime | None = None,
) -> str:
    """A workspace-admin token, or a customer token when customer_id is given."""
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "workspaceKey": workspace_key,
        "iat": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
    }
    if customer_id is None:
        claims["isAdmin"] = True
    else:
        claims["customerId"] = customer_id
        if name:
            claims["name"] = name
    return jwt.encode(claims, workspace_secret, algorithm=TOKEN_ALGORITHM)
