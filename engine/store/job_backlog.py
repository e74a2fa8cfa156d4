"""The Redis side of fair dispatch: each lane's FIFO of job ids, the rotation over lanes, and
queued-worker heartbeats. Every key shares the `{jobs}` hash tag (one Redis Cluster slot), and
every multi-step change is one Lua script (atomic).

All of this is a rebuildable index over MongoDB: a lane entry is only a hint (the dispatcher
re-checks the job document with a conditional update), and when the `built` marker is missing
(FLUSHALL, a restart) the dispatcher rebuilds the lanes from the queued jobs in MongoDB.
"""

from __future__ import annotations

PREFIX = "{jobs}"
LANES = f"{PREFIX}:lanes"
ROTATION = f"{PREFIX}:rr"
BUILT = f"{PREFIX}:built"
WORKERS = f"{PREFIX}:workers"
REBUILD_LOCK = f"{PREFIX}:rebuild-lock"


def lane_key(lane: str) -> str:
    return f"{PREFIX}:lane:{lane}"


_PUSH = """
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""
_POP_IF_HEAD = """
local head = redis.call('LINDEX', KEYS[1], 0)
local popped = 0
if head == ARGV[2] then redis.call('LPOP', KEYS[1]); popped = 1 end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return popped
"""
_HEAD = """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then redis.call('ZREM', KEYS[2], ARGV[1]) end
return head
"""
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
return redis.call('ZCARD', KEYS[1])
"""
_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return {redis.call('EXISTS', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('GET', KEYS[3]) or ''}
"""
_LANES_AFTER = """
local count = tonumber(ARGV[2])
if ARGV[1] == '' then return redis.call('ZRANGEBYLEX', KEYS[1], '-', '+', 'LIMIT', 0, count) end
local lanes = redis.call('ZRANGEBYLEX', KEYS[1], '(' .. ARGV[1], '+', 'LIMIT', 0, count)
if #lanes < count then
  local rest = redis.call('ZRANGEBYLEX', KEYS[1], '-', '[' .. ARGV[1], 'LIMIT', 0, count - #lanes)
  for _, lane in ipairs(rest) do lanes[#lanes + 1] = lane end
end
return lanes
"""
_LEAVE = "return redis.call('ZREM', KEYS[1], ARGV[1])"


class Backlog:
    """Lane FIFOs and rotation over one Redis client."""

    def __init__(self, redis):
        self.redis = redis
        self._push = redis.register_script(_PUSH)
        self._pop = redis.register_script(_POP_IF_HEAD)
        self._head = redis.register_script(_HEAD)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._leave = redis.register_script(_LEAVE)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._lanes_after = redis.register_script(_LANES_AFTER)

    def push(self, lane: str, job_id: str) -> None:
        self._push(keys=[lane_key(lane), LANES], args=[lane, job_id])

    def push_many(self, entries: list[tuple[str, str]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for lane, job_id in entries:
            self._push(keys=[lane_key(lane), LANES], args=[lane, job_id], client=pipe)
        pipe.execute()

    def head(self, lane: str) -> str | None:
        value = self._head(keys=[lane_key(lane), LANES], args=[lane])
        return value.decode() if isinstance(value, bytes) else value

    def pop_if_head(self, lane: str, job_id: str) -> bool:
        return bool(self._pop(keys=[lane_key(lane), LANES], args=[lane, job_id]))

    def lanes_after(self, after: str | None, count: int) -> list[str]:
        """Up to count lanes in rotation order, starting just after `after` and wrapping around (one round trip)."""
        values = self._lanes_after(keys=[LANES], args=[after or "", count])
        return [v.decode() if isinstance(v, bytes) else v for v in values]

    def rotation(self) -> str | None:
        value = self.redis.get(ROTATION)
        return value.decode() if value else None

    def set_rotation(self, lane: str) -> None:
        self.redis.set(ROTATION, lane)

    def lane_length(self, lane: str) -> int:
        return int(self.redis.llen(lane_key(lane)))

    def snapshot(self) -> tuple[bool, int, str | None]:
        """(lanes built, live queued workers, rotation pointer) in one round trip."""
        built, workers, rotation = self._snapshot(keys=[BUILT, WORKERS, ROTATION])
        return (
            bool(built),
            int(workers),
            (rotation.decode() if isinstance(rotation, bytes) else rotation) or None,
        )

    def is_built(self) -> bool:
        return bool(self.redis.exists(BUILT))

    def mark_built(self) -> None:
        self.redis.set(BUILT, "1")

    def try_rebuild_lock(self, ttl_seconds: int) -> bool:
        return bool(self.redis.set(REBUILD_LOCK, "1", nx=True, ex=ttl_seconds))

    def release_rebuild_lock(self) -> None:
        self.redis.delete(REBUILD_LOCK)

    def heartbeat(self, worker_id: str, ttl_seconds: float) -> int:
        """Record that a queued worker is alive for ttl_seconds (Redis server clock); returns the live count."""
        return int(self._heartbeat(keys=[WORKERS], args=[worker_id, int(ttl_seconds * 1000)]))

    def live_workers(self) -> int:
        return int(self._heartbeat(keys=[WORKERS], args=["", 0]))

    def leave(self, worker_id: str) -> None:
        self._leave(keys=[WORKERS], args=[worker_id])
