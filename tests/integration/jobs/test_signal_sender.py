"""Completion signals written without waiting for Redis's replies (engine/store/signal_sender.py),
against the real Redis."""

from __future__ import annotations

import os

import redis

from engine.store import action_runs as run_store
from engine.store.signal_sender import SignalSender, sender_for


def test_every_signal_arrives_and_the_connection_stays_in_step(services):
    # Given 200 signals sent one after the other (each write reads the previous one's replies)
    for index in range(200):
        run_store.signal_done(services.redis, f"run-{index}", f"payload-{index}")
    # Then each waiter gets its own payload, with its key set to expire
    for index in range(200):
        assert run_store.wait_signal(services.redis, f"run-{index}", 1) == f"payload-{index}".encode()
    run_store.signal_done(services.redis, "late", "x")
    assert 0 < services.redis.ttl("action-run:late:done") <= run_store.DONE_SIGNAL_TTL_SECONDS
    # And the sender's connection holds exactly the last write's two replies, nothing else
    sender = sender_for(services.redis)
    assert sender._unread == 2
    connection = sender._connection
    assert connection.read_response() == 1  # LPUSH: the list's length
    assert connection.read_response() == 1  # EXPIRE: set
    assert not connection.can_read(timeout=0.2)
    sender._unread = 0


def test_a_connection_the_server_closed_is_replaced_and_the_signal_still_arrives(services):
    # Given a sender that has written once
    sender = sender_for(services.redis)
    run_store.signal_done(services.redis, "first", "1")
    # When the server closes its connection (e.g. a `timeout` reaped it while idle)
    client_id = services.redis.client_id()
    for client in services.redis.client_list():
        if int(client["id"]) != client_id:
            services.redis.client_kill_filter(_id=client["id"])
    # Then the next signal is written on a new connection and arrives
    run_store.signal_done(services.redis, "second", "2")
    assert run_store.wait_signal(services.redis, "second", 1) == b"2"
    assert sender._connection is not None


def test_a_forked_process_writes_on_a_connection_of_its_own(services):
    sender = SignalSender(services.redis)
    sender.send([("LPUSH", "parent", "1")])
    parent_connection = sender._connection
    pid = os.fork()
    if pid == 0:  # the child: write, and say whether it used a new connection
        try:
            sender.send([("LPUSH", "child", "1")])
            code = 0 if sender._connection is not parent_connection else 1
        except BaseException:  # noqa: BLE001 - reported through the exit code
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert services.redis.lpop("child") == b"1"
    # And the parent's connection is still in step
    sender.send([("LPUSH", "parent", "2")])
    assert services.redis.lrange("parent", 0, -1) == [b"2", b"1"]
    sender.close()


def test_a_refused_command_does_not_break_the_next_write(services):
    # Given a key of the wrong type, so Redis refuses the LPUSH
    services.redis.set("action-run:typed:done", "a string")
    run_store.signal_done(services.redis, "typed", "x")
    # Then the next signal still arrives
    run_store.signal_done(services.redis, "after", "y")
    assert run_store.wait_signal(services.redis, "after", 1) == b"y"


class _NotAPlainClient:
    """A client that is not a redis.Redis (as a RedisCluster is not): pipelines only."""

    def __init__(self, client: redis.Redis):
        self.pipeline = client.pipeline


def test_a_client_that_is_not_plain_redis_is_signalled_through_a_pipeline(services):
    # Given a client of another kind (a Redis Cluster client is not a redis.Redis)
    assert not issubclass(redis.cluster.RedisCluster, redis.Redis)
    client = _NotAPlainClient(services.redis)
    # When a run is signalled through it
    run_store.signal_done(client, "clustered", "z")
    # Then the signal arrives, with its expiry
    assert run_store.wait_signal(services.redis, "clustered", 1) == b"z"
    run_store.signal_done(client, "clustered-2", "z")
    assert 0 < services.redis.ttl("action-run:clustered-2:done") <= run_store.DONE_SIGNAL_TTL_SECONDS
