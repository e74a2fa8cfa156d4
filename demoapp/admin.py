"""Test hooks of the demo app under `/_admin/` (unauthenticated: localhost only).

POST /_admin/faults  {rate_429, rate_500, retry_after_seconds, fail_next: [429, 500, ...], seed}
POST /_admin/seed    {count, emit_events=false}  -> creates `count` contacts at once
POST /_admin/oauth   {access_token_ttl_seconds, rotate_refresh_tokens, revoke_access_tokens}
POST /_admin/reset   -> forgets contacts, webhooks and faults
GET  /_admin/state   [?contacts=1] -> counts, faults, stats (and every contact, tombstones too)
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from demoapp.state import DemoState
from demoapp.webhooks import Dispatcher

MAX_SEED_COUNT = 200_000


def _number(body: dict[str, Any], name: str, current: float, low: float, high: float) -> float:
    value = body.get(name, current)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in {low}..{high}")
    return value


def register_admin(app: Flask, state: DemoState, dispatcher: Dispatcher) -> None:
    """Add the `/_admin/*` routes to the app."""

    @app.post("/_admin/faults")
    def faults() -> Any:
        body = request.get_json(silent=True) or {}
        try:
            rate_429 = _number(body, "rate_429", state.fault_rate_429, 0, 1)
            rate_500 = _number(body, "rate_500", state.fault_rate_500, 0, 1)
            retry_after = _number(body, "retry_after_seconds", state.retry_after_seconds, 0, 3600)
        except ValueError as error:
            return {"error": "bad_request", "message": str(error)}, 400
        fail_next = body.get("fail_next", [])
        if not isinstance(fail_next, list) or not all(
            isinstance(s, int) and 400 <= s <= 599 for s in fail_next
        ):
            return {"error": "bad_request", "message": "fail_next must be a list of HTTP error statuses"}, 400
        with state.lock:
            state.fault_rate_429, state.fault_rate_500 = rate_429, rate_500
            state.retry_after_seconds = int(retry_after)
            state.fail_next.extend(fail_next)
            if "seed" in body:
                state.rng.seed(body["seed"])
        return _faults(state)

    @app.post("/_admin/seed")
    def seed() -> Any:
        body = request.get_json(silent=True) or {}
        count = body.get("count", 100)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_SEED_COUNT:
            return {
                "error": "bad_request",
                "message": f"count must be an integer in 0..{MAX_SEED_COUNT}",
            }, 400
        start = state.sequence
        for n in range(start + 1, start + count + 1):
            record = state.create_contact(
                {
                    "email": f"person{n}@example.com",
                    "first_name": f"Person{n}",
                    "last_name": "Demo",
                    "company": f"Company {n % 97}",
                }
            )
            if body.get("emit_events"):
                dispatcher.publish("contact.created", record)
        return {"created": count, **state.counts()}

    @app.post("/_admin/oauth")
    def oauth_settings() -> Any:
        body = request.get_json(silent=True) or {}
        with state.lock:
            if "access_token_ttl_seconds" in body:
                state.access_token_ttl_seconds = float(body["access_token_ttl_seconds"])
            if "rotate_refresh_tokens" in body:
                state.rotate_refresh_tokens = bool(body["rotate_refresh_tokens"])
            if body.get("revoke_access_tokens"):
                state.access_tokens.clear()
            if body.get("revoke_refresh_tokens"):
                state.refresh_tokens.clear()
            return {
                "access_token_ttl_seconds": state.access_token_ttl_seconds,
                "rotate_refresh_tokens": state.rotate_refresh_tokens,
                "access_tokens": len(state.access_tokens),
                "refresh_tokens": len(state.refresh_tokens),
            }

    @app.post("/_admin/reset")
    def reset() -> Any:
        with state.lock:
            state.contacts.clear()
            state.order.clear()
            state.webhooks.clear()
            state.fail_next.clear()
            state.fault_rate_429 = state.fault_rate_500 = 0.0
        return {"reset": True}

    @app.get("/_admin/state")
    def show_state() -> Any:
        dispatcher.wait_idle(float(request.args.get("wait_deliveries_seconds", 0)))
        with state.lock:
            answer: dict[str, Any] = {
                "contacts": state.counts(),
                "faults": _faults(state),
                "stats": dict(state.stats),
                "webhooks": len(state.webhooks),
                "pendingDeliveries": dispatcher.queue.qsize(),
            }
            if request.args.get("contacts") in ("1", "true"):
                answer["records"] = [state.contacts[i] for _, i in state.order]
        return answer


def _faults(state: DemoState) -> dict[str, Any]:
    return {
        "rate_429": state.fault_rate_429,
        "rate_500": state.fault_rate_500,
        "retry_after_seconds": state.retry_after_seconds,
        "fail_next": list(state.fail_next),
    }
