"""Console users: RS256 tokens issued by Auth0 (AUTH0_DOMAIN), checked against the domain's JWKS.

The JWKS is fetched once and cached (PyJWKClient refetches on an unknown `kid`). The token must
name the workspace it acts on in a `workspaceKey` claim (or the namespaced
`https://integration-engine/workspaceKey`, as Auth0 requires for custom claims).
"""

from __future__ import annotations

import threading
from typing import Any

import jwt

from engine.auth.principal import Principal, Role
from engine.errors import Unauthorized
from engine.services import Services

JWKS_CACHE_SECONDS = 600
JWKS_TIMEOUT_SECONDS = 5
_clients: dict[str, jwt.PyJWKClient] = {}
_lock = threading.Lock()


def issuer_of(domain: str) -> str:
    """`https://<domain>/`, or the domain itself when it is already a URL (tests serve http)."""
    base = domain if domain.startswith(("http://", "https://")) else f"https://{domain}"
    return base.rstrip("/") + "/"


def _client(domain: str) -> jwt.PyJWKClient:
    with _lock:
        if domain not in _clients:
            _clients[domain] = jwt.PyJWKClient(
                issuer_of(domain) + ".well-known/jwks.json",
                cache_keys=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
        return _clients[domain]


def verify_console_token(services: Services, token: str, unverified_claims: dict[str, Any]) -> Principal:
    """The console user's principal; 401 if the signature, issuer, audience or workspace is wrong."""
    from engine.auth.verify import AUTH0_ALGORITHM, CONSOLE_WORKSPACE_CLAIMS, LEEWAY_SECONDS
    from engine.domain import tenancy

    config = services.config
    domain = config.auth0_domain or ""
    try:
        key = _client(domain).get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientError as error:
        raise Unauthorized(f"console token: signing key not found ({error})") from None
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[AUTH0_ALGORITHM],
            audience=config.auth0_client_id,
            issuer=issuer_of(domain),
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidTokenError as error:
        raise Unauthorized(f"invalid console token: {error}") from None
    workspace_key = next(
        (claims[c] for c in CONSOLE_WORKSPACE_CLAIMS if isinstance(claims.get(c), str)), None
    )
    if not workspace_key:
        raise Unauthorized("console token names no workspace (workspaceKey claim)")
    found = tenancy.workspace_with_secret(services, workspace_key)
    if found is None:
        raise Unauthorized(f"unknown workspace {workspace_key!r}")
    return Principal(Role.CONSOLE_USER, found[0].id, found[0].key, subject=str(claims["sub"]))
