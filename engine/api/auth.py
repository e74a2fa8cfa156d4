"""Authentication and authorization of API views.

    @blueprint.get("/things")
    @require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
    def list_things():
        principal = current_principal()

`require` answers 401 (no, malformed, expired, wrongly signed or `alg: none` token; unknown
workspace) or 403 (a valid token whose role may not call this route), each with its reason.
A console user (Auth0) counts as a workspace admin of its workspace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import current_app, g, request

from engine.auth.principal import Principal, Role
from engine.auth.verify import authenticate
from engine.errors import Forbidden, Unauthorized
from engine.logs import log_context

ROLE_NAMES = {
    Role.PLATFORM_ADMIN: "a platform admin",
    Role.WORKSPACE_ADMIN: "a workspace admin",
    Role.CUSTOMER: "a customer",
    Role.CONSOLE_USER: "a console user",
}


def _allowed(principal: Principal, roles: frozenset[Role]) -> bool:
    if principal.role in roles:
        return True
    return principal.role is Role.CONSOLE_USER and Role.WORKSPACE_ADMIN in roles


def require(*roles: Role) -> Callable:
    """A view decorator: authenticate the request and allow only these roles (flask.g.principal)."""
    if not roles:
        raise ValueError("require() needs at least one role")
    allowed = frozenset(roles)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            services = current_app.extensions["engine.services"]
            principal = authenticate(services, request.headers.get("Authorization"))
            if not _allowed(principal, allowed):
                who = " or ".join(ROLE_NAMES[r] for r in roles)
                raise Forbidden(f"this route needs {who} token; this is {ROLE_NAMES[principal.role]}'s")
            g.principal = principal
            with log_context(workspace=principal.workspace_key, customer=principal.customer_internal_id):
                return view(*args, **kwargs)

        wrapper.engine_roles = tuple(roles)  # type: ignore[attr-defined]  # read by the OpenAPI generator
        return wrapper

    return decorate


def current_principal() -> Principal:
    """The principal of the current request (set by @require); 401 if the view was not protected."""
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized()
    return principal
