"""API rate limits shared by every API process: a token bucket per workspace and per customer,
kept in Redis and updated by one Lua script that reads the server's clock (`TIME`), so API
processes on machines with skewed clocks still agree. Redis losing the buckets only refills them.

Also the instant-queue safety limit (instantTasksQueueSize).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.auth.principal import Principal, Role
from engine.broker import INSTANT_QUEUE
from engine.errors import TooManyRequests
from engine.limits.service import limits_for
from engine.services import Services
from engine.store import action_runs as run_store

BUCKET_TTL_MS = 10_000
"""An idle bucket is forgotten after this (a full bucket is the same as none)."""

# KEYS[1] bucket; ARGV[1] rate per second (also the burst). Returns 0 if allowed, else the ms to wait.
_TAKE = """
local rate = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = rate; at = now end
tokens = math.min(rate, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return wait
"""


def _take(services: Services, key: str, rate: int) -> int:
    client = services.redis
    script = getattr(client, "_engine_rate_script", None)
    if script is None:
        script = client.register_script(_TAKE)
        client._engine_rate_script = script  # type: ignore[union-attr]  # one per client, loaded once
    return int(script(keys=[key], args=[rate, BUCKET_TTL_MS]))


def check_rate_limit(services: Services, principal: Principal) -> None:
    """429 with Retry-After if the principal's workspace or customer is over its API rate limit."""
    if (
        not services.config.enable_limits
        or principal.role is Role.PLATFORM_ADMIN
        or not principal.workspace_id
    ):
        return
    limits = limits_for(services, principal.workspace_id, principal.customer_id)
    wait_ms = _take(services, f"{{rl}}:ws:{principal.workspace_id}", limits["apiRequestsPerSecond"])
    if wait_ms:
        raise TooManyRequests(
            f"workspace {principal.workspace_key} is over apiRequestsPerSecond "
            f"({limits['apiRequestsPerSecond']})",
            retry_after_seconds=wait_ms / 1000,
            field="apiRequestsPerSecond",
        )
    if principal.role is Role.CUSTOMER and principal.customer_id:
        rate = limits["apiRequestsPerCustomerPerSecond"]
        wait_ms = _take(services, f"{{rl}}:cus:{principal.customer_id}", rate)
        if wait_ms:
            raise TooManyRequests(
                f"customer {principal.customer_internal_id} is over apiRequestsPerCustomerPerSecond ({rate})",
                retry_after_seconds=wait_ms / 1000,
                field="apiRequestsPerCustomerPerSecond",
            )


def instant_counts(services: Services) -> tuple[int, int]:
    """(waiting, active) instant tasks: messages in the broker's `instant` list, and action runs
    recorded as running (MongoDB; a run that calls out records its claim first)."""
    return int(services.broker.llen(INSTANT_QUEUE)), run_store.count_pending(services.db, "running")


INSTANT_QUEUE_CHECK_SECONDS = 1.0
"""How long a process reuses its count of waiting instant tasks."""
_instant_waiting: dict[str, tuple[float, int]] = {}
"""Per broker URL: (clock reading, waiting count). Keyed by URL, not by the Services object, whose
id() a later object may reuse."""


def check_instant_queue_size(
    services: Services, workspace_id: str | None = None, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """429 if instantTasksQueueSize instant tasks already wait (a safety limit: always on).

    Asking the broker on every request would add a round trip to the action-run hot path, so the
    count is cached per process for INSTANT_QUEUE_CHECK_SECONDS: a safety limit may overshoot
    by one second's worth of requests."""
    limit = limits_for(services, workspace_id or "")["instantTasksQueueSize"]
    key = services.config.broker_url
    cached = _instant_waiting.get(key)
    moment = clock()
    # Fresh only if read within the last second by this clock (a reading "from the future" is stale).
    if cached is None or not 0 <= moment - cached[0] <= INSTANT_QUEUE_CHECK_SECONDS:
        waiting = int(services.broker.llen(INSTANT_QUEUE))
        cached = (moment, waiting)
        _instant_waiting[key] = cached
    waiting = cached[1]
    if waiting >= limit:
        raise TooManyRequests(
            f"{waiting} instant tasks are already waiting (instantTasksQueueSize {limit})",
            retry_after_seconds=2.0,
            field="instantTasksQueueSize",
        )
