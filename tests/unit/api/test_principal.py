"""Principal.workspace: the typed workspace id that workspace-scoped views and services use."""

from __future__ import annotations

import pytest

from engine.auth.principal import Principal, Role
from engine.errors import Forbidden


def test_workspace_is_the_workspace_id_of_a_workspace_principal():
    for role in (Role.WORKSPACE_ADMIN, Role.CUSTOMER, Role.CONSOLE_USER):
        assert Principal(role, "ws_1", "acme", customer_id="cus_1").workspace == "ws_1"


def test_a_platform_admin_has_no_workspace():
    with pytest.raises(Forbidden) as raised:
        _ = Principal(Role.PLATFORM_ADMIN, subject="platform-admin").workspace
    assert raised.value.status == 403
    assert "workspace token" in raised.value.message
