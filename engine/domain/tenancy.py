"""Workspaces and customers (domain.md §3): creation, look-up and the customer upsert of tokens."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import crypto
from engine.domain.common import Page, check_key, iso, now, page_of
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.ids import new_id
from engine.services import Services
from engine.store import customers as customer_store
from engine.store import workspaces as workspace_store

WORKSPACE_SECRET_BYTES = 32
WORKSPACE_CACHE_SECONDS = 5.0
"""How long a process trusts its copy of a workspace (and decrypted secret) before re-reading it."""
CUSTOMER_CACHE_SECONDS = 60.0
"""How long a process remembers that a customer exists (customers are only created, by token or API)."""
MAX_NAME_CHARS = 200
MAX_INTERNAL_ID_CHARS = 200


@dataclass(frozen=True)
class Workspace:
    id: str
    key: str
    name: str
    created_at: datetime
    secret_envelope: dict[str, Any] | None = None

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> Workspace:
        return cls(d["_id"], d["key"], d.get("name", ""), d["createdAt"], d.get("secret"))

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "key": self.key,
            "name": self.name,
            "createdAt": self.created_at,
            "secret": self.secret_envelope,
        }

    def to_public(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "name": self.name, "createdAt": iso(self.created_at)}


@dataclass(frozen=True)
class Customer:
    id: str
    workspace_id: str
    internal_id: str
    name: str
    created_at: datetime

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> Customer:
        return cls(d["_id"], d["workspaceId"], d["internalId"], d.get("name", ""), d["createdAt"])

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "internalId": self.internal_id,
            "name": self.name,
            "createdAt": self.created_at,
        }

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "internalId": self.internal_id,
            "name": self.name,
            "createdAt": iso(self.created_at),
        }


# Process-local caches keyed by database name so tests on several databases stay isolated.
_lock = threading.Lock()
_workspaces: dict[tuple[str, str], tuple[float, Workspace, str]] = {}
_customers: dict[tuple[str, str, str], tuple[float, Customer]] = {}


_dependent_caches: list[Callable[[], None]] = []


def on_clear_caches(clear: Callable[[], None]) -> None:
    """Have clear_caches() also call `clear` (a cache derived from workspaces, e.g. verified tokens)."""
    _dependent_caches.append(clear)


def clear_caches() -> None:
    """Forget cached workspaces and customers, and what was derived from them (tests; after a
    secret rotation)."""
    with _lock:
        _workspaces.clear()
        _customers.clear()
    for clear in _dependent_caches:
        clear()


def _name(value: Any, field: str = "name") -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise ValidationFailed(
            f"{field} must be a string of at most {MAX_NAME_CHARS} characters", field=field
        )
    return value


def create_workspace(
    services: Services, key: str | None = None, name: str | None = None
) -> tuple[Workspace, str]:
    """A new workspace and its secret (the only time the secret is returned); 409 if the key is taken."""
    key = check_key(key, "key") if key is not None else f"ws-{secrets.token_hex(6)}"
    secret = secrets.token_urlsafe(WORKSPACE_SECRET_BYTES)
    workspace_id = new_id("ws")
    envelope = crypto.encrypt_json(services.config.encryption_secret, secret, aad=workspace_id)
    workspace = Workspace(workspace_id, key, _name(name), now(), envelope)
    try:
        workspace_store.insert(services.db, workspace.to_document())
    except workspace_store.WorkspaceKeyTaken:
        raise Conflict(f"a workspace with key {key!r} already exists", field="key") from None
    return workspace, secret


def workspace_with_secret(services: Services, key: str) -> tuple[Workspace, str] | None:
    """The workspace with this key and its decrypted secret (cached briefly), or None."""
    cache_key = (services.db.name, key)
    cached = _workspaces.get(cache_key)
    if cached and cached[0] > time.monotonic():
        return cached[1], cached[2]
    document = workspace_store.find_by_key(services.db, key)
    if document is None:
        return None
    workspace = Workspace.from_document(document)
    assert workspace.secret_envelope is not None, (
        f"workspace {key!r} has no secret: create_workspace always sets one"
    )
    secret = crypto.decrypt_json(
        services.config.encryption_secret, workspace.secret_envelope, aad=workspace.id
    )
    with _lock:
        _workspaces[cache_key] = (time.monotonic() + WORKSPACE_CACHE_SECONDS, workspace, secret)
    return workspace, secret


def get_workspace(services: Services, key: str) -> Workspace:
    document = workspace_store.find_by_key(services.db, key)
    if document is None:
        raise NotFound(f"no workspace {key!r}")
    return Workspace.from_document(document)


def list_workspaces(services: Services, *, cursor: str | None, limit: int) -> Page:
    return page_of(
        workspace_store.list_page(services.db, after_id=cursor, limit=limit + 1),
        limit,
        Workspace.from_document,
    )


def _internal_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_INTERNAL_ID_CHARS:
        raise ValidationFailed(
            f"internalId must be a non-empty string of at most {MAX_INTERNAL_ID_CHARS} characters",
            field="internalId",
        )
    return value


def ensure_customer(
    services: Services, workspace_id: str, internal_id: str, name: str | None = None
) -> Customer:
    """The customer with this internalId, created on first sight (a customer token's first request)."""
    internal_id = _internal_id(internal_id)
    cache_key = (services.db.name, workspace_id, internal_id)
    cached = _customers.get(cache_key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    document = customer_store.find_by_internal_id(services.db, workspace_id, internal_id)
    if document is None:
        customer = Customer(
            new_id("cus"), workspace_id, internal_id, name if isinstance(name, str) else "", now()
        )
        try:
            customer_store.insert(services.db, customer.to_document())
        except customer_store.CustomerExists:
            # Two first requests at once: the other one created it.
            document = customer_store.find_by_internal_id(services.db, workspace_id, internal_id)
            customer = Customer.from_document(document)  # type: ignore[arg-type]
    else:
        customer = Customer.from_document(document)
    with _lock:
        _customers[cache_key] = (time.monotonic() + CUSTOMER_CACHE_SECONDS, customer)
    return customer


def create_customer(services: Services, workspace_id: str, internal_id: Any, name: Any = None) -> Customer:
    """A new customer; 409 if the internalId exists."""
    customer = Customer(new_id("cus"), workspace_id, _internal_id(internal_id), _name(name), now())
    try:
        customer_store.insert(services.db, customer.to_document())
    except customer_store.CustomerExists:
        raise Conflict(
            f"a customer with internalId {customer.internal_id!r} already exists", field="internalId"
        ) from None
    return customer


def get_customer(services: Services, workspace_id: str, customer_id: str) -> Customer:
    """By engine id, or by internalId when no customer has that id."""
    document = customer_store.find_by_id(
        services.db, workspace_id, customer_id
    ) or customer_store.find_by_internal_id(services.db, workspace_id, customer_id)
    if document is None:
        raise NotFound(f"no customer {customer_id!r}")
    return Customer.from_document(document)


def list_customers(services: Services, workspace_id: str, *, cursor: str | None, limit: int) -> Page:
    return page_of(
        customer_store.list_page(services.db, workspace_id, after_id=cursor, limit=limit + 1),
        limit,
        Customer.from_document,
    )


def delete_customer(services: Services, workspace_id: str, customer_id: str) -> None:
    customer = get_customer(services, workspace_id, customer_id)
    customer_store.delete(services.db, workspace_id, customer.id)
    with _lock:
        _customers.pop((services.db.name, workspace_id, customer.internal_id), None)
