"""Webhook delivery for the demo app: a background thread posts events to subscribers.

Requests only enqueue; a slow or dead subscriber never blocks the API. Each delivery has a
timeout and one retry. Bodies are signed: `X-Demo-Signature: sha256=<hex HMAC of the body>`
with the subscription's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

import requests

from demoapp.state import DemoState

DELIVERY_TIMEOUT_SECONDS = 5.0
RETRY_DELAY_SECONDS = 0.5
EVENT_TYPES = ("contact.created", "contact.updated", "contact.deleted")
log = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """The signature header value of a delivery body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Dispatcher:
    """One daemon thread delivering queued events in order."""

    def __init__(self, state: DemoState):
        self.state = state
        self.queue: queue.Queue[tuple[dict[str, Any], bytes, str] | None] = queue.Queue()
        self.session = requests.Session()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event for every subscription that wants it. Never blocks on the network."""
        with self.state.lock:
            targets = [
                dict(w)
                for w in self.state.webhooks.values()
                if event_type in w["events"] or "*" in w["events"]
            ]
        if not targets:
            return
        event = {
            "id": uuid.uuid4().hex,
            "type": event_type,
            "occurred_at": data.get("updated_at"),
            "data": data,
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        self._ensure_started()
        for target in targets:
            self.queue.put((target, body, event_type))

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="demoapp-webhooks", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.queue.put(None)
            self._thread.join(timeout=DELIVERY_TIMEOUT_SECONDS * 2 + 1)

    def wait_idle(self, timeout_seconds: float = 10.0) -> bool:
        """Wait until every queued delivery was attempted (for tests)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self.queue.task_done()

    def _deliver(self, target: dict[str, Any], body: bytes, event_type: str) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Demo-Event": event_type,
            "X-Demo-Signature": sign(target["secret"], body),
        }
        for attempt in range(2):
            try:
                response = self.session.post(
                    target["url"], data=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS
                )
                if response.status_code < 300:
                    with self.state.lock:
                        self.state.stats["deliveries"] += 1
                    return
            except requests.RequestException as error:
                log.info("webhook delivery to %s failed: %s", target["url"], error)
            if attempt == 0:
                time.sleep(RETRY_DELAY_SECONDS)
        with self.state.lock:
            self.state.stats["deliveryFailures"] += 1
