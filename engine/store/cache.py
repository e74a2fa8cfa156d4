"""Redis: a cache and a delivery channel that may be erased at any moment."""

from __future__ import annotations

from urllib.parse import urlparse

import redis
from redis.cluster import ClusterNode, RedisCluster

from engine.config import Config

REDIS_SOCKET_TIMEOUT_SECONDS = 5
REDIS_CONNECT_TIMEOUT_SECONDS = 2


def connect_redis(config: Config) -> redis.Redis | RedisCluster:
    """A client for the cache: the cluster when REDIS_CLUSTER_URI_N are set, else REDIS_URI."""
    if config.redis_cluster:
        nodes = [urlparse(uri) for uri in config.redis_uris[1:]]
        return RedisCluster(
            startup_nodes=[ClusterNode(node.hostname or "localhost", node.port or 6379) for node in nodes],
            username=nodes[0].username,
            password=nodes[0].password,
            ssl=nodes[0].scheme == "rediss",
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        )
    return connect_broker(config)


def connect_broker(config: Config) -> redis.Redis:
    """A client for the Redis Celery uses as its broker (config.broker_url)."""
    return redis.Redis.from_url(
        config.broker_url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        health_check_interval=15,
    )
