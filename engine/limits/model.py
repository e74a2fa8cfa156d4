"""The limits, their defaults, which ones a workspace may set per customer, and validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ValidationFailed


@dataclass(frozen=True)
class LimitSpec:
    name: str
    default: int
    per_customer: bool
    minimum: int = 0
    safety: bool = False
    """Queue-size safety limits are enforced even without ENABLE_LIMITS."""


SPECS: dict[str, LimitSpec] = {
    s.name: s
    for s in [
        LimitSpec("parallelFlowRunsPerConnection", 1, True),
        LimitSpec("flowRunsQueueSizePerConnection", 10_000, True, safety=True),
        LimitSpec("parallelFlowRuns", 10, False),
        LimitSpec("parallelBackgroundJobsPerCustomer", 2, True),
        LimitSpec("parallelEventPulls", 10, False),
        LimitSpec("parallelCustomCodeRunsPerCustomer", 2, True),
        LimitSpec("apiRequestsPerSecond", 100, False, minimum=1),
        LimitSpec("apiRequestsPerCustomerPerSecond", 10, True, minimum=1),
        LimitSpec("instantTasksQueueSize", 10_000, False, safety=True),
        LimitSpec("queuedTasksQueueSize", 100_000, False, safety=True),
    ]
}
MAX_LIMIT_VALUE = 10_000_000
DEFAULTS: dict[str, int] = {name: spec.default for name, spec in SPECS.items()}
CUSTOMER_LIMITS = frozenset(name for name, spec in SPECS.items() if spec.per_customer)


def validate(values: Any, *, per_customer: bool) -> dict[str, int]:
    """The overrides of a PUT body, checked; 400 naming the first bad limit. None removes an override."""
    if not isinstance(values, Mapping):
        raise ValidationFailed("the body must be an object of limit names to whole numbers", field="body")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        spec = SPECS.get(name)
        if spec is None:
            raise ValidationFailed(f"unknown limit {name!r}", field=name)
        if per_customer and not spec.per_customer:
            raise ValidationFailed(f"{name} is a workspace limit; it cannot be set per customer", field=name)
        if value is None:
            checked[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationFailed(f"{name} must be a whole number, got {type(value).__name__}", field=name)
        if not spec.minimum <= value <= MAX_LIMIT_VALUE:
            raise ValidationFailed(
                f"{name} must be {spec.minimum}..{MAX_LIMIT_VALUE}, got {value}", field=name
            )
        checked[name] = value
    return checked


def effective(
    workspace: Mapping[str, int] | None, customer: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Defaults, overridden by the workspace's values, then the customer's per-customer ones."""
    values = dict(DEFAULTS)
    values.update({k: v for k, v in (workspace or {}).items() if k in SPECS and v is not None})
    values.update({k: v for k, v in (customer or {}).items() if k in CUSTOMER_LIMITS and v is not None})
    return values
