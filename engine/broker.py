"""Celery task messages published straight to the Redis broker: one LPUSH per message.

Why not `send_task`: kombu's Redis transport builds a new Redis client object for every message
it publishes (`Channel.conn_or_acquire`) and wraps the LPUSH in its retry and declare machinery.
That is about 0.45 ms of CPU per message in one quiet process, against 0.12 ms this way, and it
grows under the API's threads, where the action-run hot path pays it on every request.

The message is still Celery's own: protocol 2 built by `app.amqp.as_task_v2`, serialized by
kombu's JSON serializer. Only the envelope of kombu's virtual transport (base64 body, delivery
info, delivery tag) is written here, for the anonymous direct exchange Celery uses for a named
queue, at the default priority. tests/integration/jobs/test_broker.py compares it field by field
with what `send_task` puts on the same Redis, and every worker test consumes it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as envelope_json
from redis import Redis

INSTANT_QUEUE = "instant"
"""Short jobs: run action, test connection."""
QUEUED_QUEUE = "queued"
"""Long jobs: flow runs, event pulls, external events, syncs."""

PERSISTENT_DELIVERY_MODE = 2
"""AMQP delivery mode Celery sets on task messages (task_default_delivery_mode 'persistent')."""
BODY_ENCODING = "base64"
"""How kombu's virtual transport (Redis) stores message bodies."""


@cache
def _message_builder() -> Celery:
    """A Celery app that only builds messages (no broker; built once per process on first use)."""
    return Celery("engine-messages", set_as_current=False)


def publish(
    broker: Redis,
    name: str,
    queue: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    **reprs: str | None,
) -> str:
    """Put one message for task `name` on `queue` (only JSON-serializable arguments); its task id.

    reprs: `argsrepr`/`kwargsrepr`, as `task_message` takes them. Raises what the Redis client
    raises when the broker is unreachable."""
    task_id, envelope = task_message(name, queue, args, kwargs, **reprs)
    broker.lpush(queue, envelope)
    return task_id


def task_message(
    name: str,
    queue: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    argsrepr: str | None = None,
    kwargsrepr: str | None = None,
) -> tuple[str, str]:
    """The task id and the text to LPUSH on `queue` for one message, for a caller that sends it
    in a pipeline of its own (else `publish`). argsrepr/kwargsrepr are what the worker's logs
    show of the arguments (default: their repr)."""
    task_id = str(uuid.uuid4())
    message = _message_builder().amqp.as_task_v2(
        task_id,
        name,
        list(args),
        kwargs or {},
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
        ignore_result=None,  # as send_task: the worker applies the task's own setting
    )
    content_type, content_encoding, body = serialize(message.body, serializer="json")
    if isinstance(body, str):
        body = body.encode(content_encoding)
    envelope = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": PERSISTENT_DELIVERY_MODE,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": BODY_ENCODING,
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return task_id, envelope_json(envelope)
