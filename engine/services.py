"""The explicit dependencies of a process: configuration and clients, built once, passed in."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from pymongo import MongoClient
from pymongo.database import Database
from redis import Redis
from redis.cluster import RedisCluster

from engine.config import Config
from engine.store.blobs import BlobStore
from engine.store.cache import connect_broker, connect_redis
from engine.store.mongo import connect_mongo


@dataclass
class Services:
    """Configuration and clients. Clients connect lazily, so building this does no I/O."""

    config: Config
    mongo: MongoClient
    db: Database
    redis: redis.Redis | RedisCluster
    blobs: BlobStore
    broker: Redis
    """The Redis Celery uses as its broker: the cache's client unless the cache is a cluster."""

    @classmethod
    def from_config(cls, config: Config, *, app_name: str = "integration-engine") -> Services:
        """Build clients for MONGO_URI, REDIS_URI and the S3 buckets."""
        mongo = connect_mongo(config.mongo_uri, app_name=app_name)
        cache = connect_redis(config)
        return cls(
            config=config,
            mongo=mongo,
            db=mongo[config.database_name],
            redis=cache,
            blobs=BlobStore.from_config(config),
            broker=connect_broker(config) if isinstance(cache, RedisCluster) else cache,
        )

    def close(self) -> None:
        """Close the clients' pools."""
        self.mongo.close()
        self.redis.close()
        if self.broker is not self.redis:
            self.broker.close()
