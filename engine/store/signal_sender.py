"""Best-effort Redis writes from a worker, sent without waiting for their replies.

A completion signal is best effort (its waiter re-reads MongoDB at least every second) and a
worker sends one per run. Waiting for Redis to confirm it costs the worker a wakeup per run,
after which it runs cold: about 0.2 ms of CPU per run on 2 shared cores (docs/benchmarks.md). So
a SignalSender writes the commands and returns; their replies are read just before its next
write, by which time they have long arrived. It keeps a connection of its own (the pool's others
must never hold unread replies), made from the client's pool settings.

A connection that fails is dropped and the write is tried once more on a new one. When the
connection has been idle longer than the client's health-check interval, redis-py pings it before
writing (after the unread replies are read); and a connection the server has closed since (its
end is readable past the replies) is replaced rather than written into.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRIED_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
"""A write failing with one of these is tried once more, on a new connection."""

_senders: weakref.WeakKeyDictionary[redis.Redis, SignalSender] = weakref.WeakKeyDictionary()
_senders_lock = threading.Lock()


class SignalSender:
    """Writes commands on its own connection without reading their replies until the next write.
    Thread-safe; a process forked after its first use opens a connection of its own."""

    def __init__(self, client: redis.Redis):
        self._pool = client.connection_pool
        self._lock = threading.Lock()
        self._connection: Any = None
        self._unread = 0
        self._pid = os.getpid()

    def send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        """Write commands (each a tuple of its words) in one go; raises when Redis is unreachable."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the connection is the parent's
                self._connection, self._unread, self._pid = None, 0, os.getpid()
            try:
                self._write(commands)
            except RETRIED_ERRORS:
                self._drop()
                self._write(commands)

    def close(self) -> None:
        """Close the connection (unread replies are dropped with it)."""
        with self._lock:
            self._drop()

    def _write(self, commands: Sequence[tuple[Any, ...]]) -> None:
        if self._connection is None:
            self._connection = self._pool.connection_class(**self._pool.connection_kwargs)
            self._unread = 0
        connection = self._connection
        try:
            while self._unread:
                self._unread -= 1
                try:
                    connection.read_response()
                except ResponseError:
                    pass  # the server refused one of the previous commands: nothing to undo
            if connection.can_read(timeout=0):
                # Past its replies the server sent nothing but, maybe, the end of the connection
                # (closed while idle): a write into it would be lost without an error.
                raise RedisConnectionError("the signal connection was closed by the server")
            connection.send_packed_command(connection.pack_commands(commands))
            self._unread = len(commands)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._connection, self._unread = None, 0


def sender_for(client: redis.Redis) -> SignalSender:
    """The process's SignalSender for this client (made on first use)."""
    with _senders_lock:
        sender = _senders.get(client)
        if sender is None:
            sender = _senders[client] = SignalSender(client)
        return sender
