"""engine.broker.publish against Celery's own send_task, on the same real Redis."""

from __future__ import annotations

import base64
import json

from celery import Celery

from engine.broker import INSTANT_QUEUE, publish


def _decoded(raw: bytes) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def test_a_published_message_is_the_one_send_task_would_put_on_the_list(services):
    # Given the same task sent by Celery's send_task and by publish, to the same broker
    celery = Celery("reference", broker=services.config.broker_url, set_as_current=False)
    celery.conf.update(task_serializer="json", accept_content=["json"])
    arguments = (["arun_1"], {"snapshot": {"input": {"n": 1, "s": "é"}}})
    celery.send_task(
        "instant.run_action", args=arguments[0], kwargs=arguments[1], queue=INSTANT_QUEUE, argsrepr="x"
    )
    task_id = publish(services.broker, "instant.run_action", INSTANT_QUEUE, *arguments, argsrepr="x")
    # When both are read back from the queue's list
    ours, theirs = (_decoded(raw) for raw in services.broker.lrange(INSTANT_QUEUE, 0, -1))
    # Then they carry the same envelope, headers, properties and body (ids and origin aside)
    volatile = {"id", "root_id", "origin"}
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == task_id
    assert {k: v for k, v in ours["headers"].items() if k not in volatile} == {
        k: v for k, v in theirs["headers"].items() if k not in volatile
    }
    assert ours["body"] == theirs["body"] == [*arguments, ours["body"][2]]
    assert {k: ours[k] for k in ("content-type", "content-encoding")} == {
        k: theirs[k] for k in ("content-type", "content-encoding")
    }
    wanted = ("delivery_mode", "delivery_info", "priority", "body_encoding")
    assert {k: ours["properties"][k] for k in wanted} == {k: theirs["properties"][k] for k in wanted}
    assert ours["properties"]["correlation_id"] == task_id
    celery.close()
