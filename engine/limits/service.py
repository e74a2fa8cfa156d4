"""Reading and setting limits; the effective limits of a job's workspace and customer (cached briefly)."""

from __future__ import annotations

import threading
import time
from typing import Any

from engine.domain import tenancy
from engine.limits.model import CUSTOMER_LIMITS, effective, validate
from engine.services import Services
from engine.store import limits as store

LIMITS_CACHE_SECONDS = 2.0
"""How long a process trusts its copy of a scope's overrides: a PUT takes effect within this."""

_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def _overrides(services: Services, scope_id: str) -> dict[str, Any]:
    key = (services.db.name, scope_id)
    cached = _cache.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    values = store.get(services.db, scope_id)
    with _lock:
        _cache[key] = (time.monotonic() + LIMITS_CACHE_SECONDS, values)
    return values


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def limits_for(services: Services, workspace_id: str, customer_id: str | None = None) -> dict[str, int]:
    """The effective limits for a workspace, or for one of its customers."""
    workspace = _overrides(services, f"ws:{workspace_id}")
    customer = _overrides(services, f"cus:{customer_id}") if customer_id else None
    return effective(workspace, customer)


def workspace_limits(services: Services, workspace_key: str) -> dict[str, Any]:
    """GET /limits/workspaces/{key}: effective values and the overrides."""
    workspace = tenancy.get_workspace(services, workspace_key)
    overrides = store.get(services.db, f"ws:{workspace.id}")
    return {"workspaceKey": workspace.key, "limits": effective(overrides), "overrides": overrides}


def put_workspace_limits(services: Services, workspace_key: str, body: Any) -> dict[str, Any]:
    workspace = tenancy.get_workspace(services, workspace_key)
    store.put(services.db, f"ws:{workspace.id}", validate(body, per_customer=False))
    clear_cache()
    return workspace_limits(services, workspace_key)


def customer_limits(services: Services, workspace_id: str, customer_id: str) -> dict[str, Any]:
    """GET /limits/customers/{id}: the per-customer limits in effect and the customer's overrides."""
    customer = tenancy.get_customer(services, workspace_id, customer_id)
    overrides = store.get(services.db, f"cus:{customer.id}")
    values = effective(store.get(services.db, f"ws:{workspace_id}"), overrides)
    return {
        "customerId": customer.id,
        "internalId": customer.internal_id,
        "limits": {k: v for k, v in values.items() if k in CUSTOMER_LIMITS},
        "overrides": overrides,
    }


def put_customer_limits(services: Services, workspace_id: str, customer_id: str, body: Any) -> dict[str, Any]:
    customer = tenancy.get_customer(services, workspace_id, customer_id)
    store.put(services.db, f"cus:{customer.id}", validate(body, per_customer=True))
    clear_cache()
    return customer_limits(services, workspace_id, customer_id)
