"""parallelCustomCodeRunsPerCustomer: at most N custom code runs of one customer in flight at once,
across every engine process that calls the custom code runner (API, instant and queued workers).

Every engine call to the runner goes through `custom_code_slot` (run-python nodes, Python
actions and Python connector operations). The slots live in Redis, one sorted set per customer
whose members are holder ids scored by their expiry (server clock, `TIME`):

- acquire (one Lua script): drop expired holders, add ours if fewer than the limit remain;
- wait: `BLPOP` on the customer's release list (one entry pushed per release), re-trying at
  least every RELEASE_POLL_SECONDS (so expired holders and lost notifications are noticed), up
  to SLOT_WAIT_SECONDS; then the run fails with TooManyRequests naming the limit;
- release (one Lua script, in `finally`): remove ours and notify one waiter.

A holder whose process died (SIGKILL, OOM, lost machine) is dropped once SLOT_HOLDER_TTL_SECONDS
have passed since it took the slot. Holders are not refreshed: the TTL sits well above the
longest a caller can hold a slot (every caller bounds its runner call, see the constant).
Both keys carry the customer's hash tag, so they live in one Redis Cluster slot.

Redis is a cache that may be erased (domain.md §10): erasing it only frees every slot, and when
Redis cannot be reached the run goes ahead without the limit (a warning is logged) rather than
failing customers' work. Without ENABLE_LIMITS, or for work without a customer, nothing is checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator

import redis

from engine.errors import TooManyRequests
from engine.limits.service import limits_for
from engine.services import Services

log = logging.getLogger(__name__)

LIMIT_NAME = "parallelCustomCodeRunsPerCustomer"
SLOT_HOLDER_TTL_SECONDS = 180.0
"""A holder that never released (its process died) is dropped this long after it took the slot.
Comfortably above the longest hold: a run-python node (30 s of runner-busy retries plus a 70 s
runner call) or a Python action (a 35 s runner call)."""
SLOT_WAIT_SECONDS = 30.0
"""How long a run waits for one of its customer's slots before failing."""
RELEASE_POLL_SECONDS = 1.0
"""Longest single wait for a release notification before trying again (below the Redis client's
socket timeout)."""
RELEASE_SIGNAL_TTL_MS = 5_000
"""An unread release notification is forgotten after this."""
KEY_PREFIX = "cc"

# KEYS[1] holders (sorted set: holder id -> expiry ms); ARGV[1] holder id, ARGV[2] limit,
# ARGV[3] holder TTL ms. Returns {1 if acquired else 0, holders after the call}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  if held >= tonumber(ARGV[2]) then return {0, held} end
  held = held + 1
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, held}
"""
# KEYS[1] holders. Returns the live holders.
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
# KEYS[1] holders, KEYS[2] release list; ARGV[1] holder id, ARGV[2] limit, ARGV[3] signal TTL ms.
# Returns 1 if the holder was still there.
_RELEASE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, math.max(tonumber(ARGV[2]), 1) - 1)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return removed
"""


def holders_key(customer_id: str) -> str:
    """The sorted set of a customer's slot holders (hash-tagged per customer)."""
    return f"{{{KEY_PREFIX}:{customer_id}}}:holders"


def released_key(customer_id: str) -> str:
    """The list a release pushes to, waking one waiter of the customer."""
    return f"{{{KEY_PREFIX}:{customer_id}}}:released"


def _script(client, name: str, source: str):
    """The client's registered script (loaded once per client, like the rate limits')."""
    attribute = f"_engine_custom_code_{name}"
    script = getattr(client, attribute, None)
    if script is None:
        script = client.register_script(source)
        setattr(client, attribute, script)
    return script


def _new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def in_flight(services: Services, customer_id: str) -> int:
    """How many live holders the customer has now (expired ones not counted)."""
    return int(_script(services.redis, "count", _COUNT)(keys=[holders_key(customer_id)]))


@contextlib.contextmanager
def custom_code_slot(
    services: Services,
    workspace_id: str,
    customer_id: str | None,
    *,
    wait_seconds: float | None = None,
    holder_ttl_seconds: float | None = None,
) -> Iterator[float]:
    """Hold one of the customer's parallelCustomCodeRunsPerCustomer slots for the block; yields the
    seconds spent waiting for it (0.0 when a slot was free at once).

    Waits up to `wait_seconds` (default SLOT_WAIT_SECONDS), then raises TooManyRequests (field
    parallelCustomCodeRunsPerCustomer). A no-op without ENABLE_LIMITS or without a customer.
    The slot is released when the block ends, however it ends."""
    if not services.config.enable_limits or not customer_id:
        yield 0.0
        return
    limit = limits_for(services, workspace_id, customer_id)[LIMIT_NAME]
    wait = SLOT_WAIT_SECONDS if wait_seconds is None else wait_seconds
    ttl_ms = int((SLOT_HOLDER_TTL_SECONDS if holder_ttl_seconds is None else holder_ttl_seconds) * 1000)
    holder = _new_holder_id()
    try:
        waited = _acquire(services, customer_id, holder, limit, wait, ttl_ms)
        held = True
    except redis.RedisError as error:
        log.warning(
            "custom code slot unavailable (%s); customer %s runs without %s", error, customer_id, LIMIT_NAME
        )
        waited, held = 0.0, False
    try:
        yield waited
    finally:
        if held:
            _release(services, customer_id, holder, limit)


def _acquire(
    services: Services, customer_id: str, holder: str, limit: int, wait: float, ttl_ms: int
) -> float:
    """Take a slot, waiting up to `wait` seconds; the seconds waited (0.0 if free at once).
    Raises TooManyRequests."""
    client = services.redis
    acquire = _script(client, "acquire", _ACQUIRE)
    keys = [holders_key(customer_id)]
    started = time.monotonic()
    deadline = started + wait
    attempts = 0
    while True:
        attempts += 1
        acquired, held = acquire(keys=keys, args=[holder, limit, ttl_ms])
        if int(acquired):
            if attempts == 1:
                return 0.0
            waited = time.monotonic() - started
            log.info(
                "custom code of customer %s waited %.1f s for a slot (%s %d)",
                customer_id,
                waited,
                LIMIT_NAME,
                limit,
            )
            return waited
        if limit <= 0:
            raise TooManyRequests(
                f"custom code is switched off for this customer ({LIMIT_NAME} 0)",
                retry_after_seconds=RELEASE_POLL_SECONDS,
                field=LIMIT_NAME,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.warning(
                "custom code of customer %s refused: %d runs in flight after %.1f s (%s %d)",
                customer_id,
                int(held),
                time.monotonic() - started,
                LIMIT_NAME,
                limit,
            )
            raise TooManyRequests(
                f"the customer already has {int(held)} custom code runs in flight and no slot freed up "
                f"within {wait:g} s ({LIMIT_NAME} {limit})",
                retry_after_seconds=RELEASE_POLL_SECONDS,
                field=LIMIT_NAME,
            )
        client.blpop([released_key(customer_id)], timeout=max(0.01, min(remaining, RELEASE_POLL_SECONDS)))


def _release(services: Services, customer_id: str, holder: str, limit: int) -> None:
    """Give the slot back and wake one waiter (best effort: an unreleased slot expires)."""
    try:
        release = _script(services.redis, "release", _RELEASE)
        release(
            keys=[holders_key(customer_id), released_key(customer_id)],
            args=[holder, limit, RELEASE_SIGNAL_TTL_MS],
        )
    except redis.RedisError as error:
        log.warning(
            "custom code slot of customer %s not released (%s); it expires on its own", customer_id, error
        )
