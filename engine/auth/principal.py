"""Who is calling: the principal a request's token proves (domain.md §4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.errors import Forbidden


class Role(StrEnum):
    """What a token proves."""

    PLATFORM_ADMIN = "platform-admin"
    WORKSPACE_ADMIN = "workspace-admin"
    CUSTOMER = "customer"
    CONSOLE_USER = "console-user"


@dataclass(frozen=True)
class Principal:
    """The caller. workspace_id is set for every role but PLATFORM_ADMIN; customer_id for CUSTOMER.

    customer_id is the engine's id of the customer document; customer_internal_id is the
    workspace's own id for that customer (the token's `customerId` claim).
    """

    role: Role
    workspace_id: str | None = None
    workspace_key: str | None = None
    customer_id: str | None = None
    customer_internal_id: str | None = None
    subject: str | None = None

    @property
    def workspace(self) -> str:
        """The caller's workspace id; Forbidden for a platform admin, whose token has no workspace.

        `engine.auth.verify.authenticate` sets workspace_id for every other role, so a view behind
        `@require(...)` without PLATFORM_ADMIN can use this without a check of its own.
        """
        if self.workspace_id is None:
            raise Forbidden("this route needs a workspace token; a platform admin token has no workspace")
        return self.workspace_id

    @property
    def is_workspace_admin(self) -> bool:
        return self.role in (Role.WORKSPACE_ADMIN, Role.CONSOLE_USER)
