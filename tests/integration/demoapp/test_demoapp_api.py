"""The demo app itself, over HTTP: auth, contacts, paging, tombstones, webhooks, faults, OAuth2."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import requests
from demo_helpers import API_KEY, serve
from flask import Flask, request

from demoapp import DemoState, create_app
from demoapp.webhooks import sign

KEY = {"X-Api-Key": API_KEY}


def test_health_is_open_and_api_needs_credentials(demo):
    assert requests.get(demo.url + "/", timeout=5).json()["ok"] is True
    assert requests.get(demo.url + "/contacts", timeout=5).status_code == 401
    assert requests.get(demo.url + "/contacts", headers={"X-Api-Key": "wrong"}, timeout=5).status_code == 401
    assert requests.get(demo.url + "/me", headers=KEY, timeout=5).json()["method"] == "api-key"
    assert requests.get(demo.url + "/me", params={"api_key": API_KEY}, timeout=5).status_code == 200
    assert (
        requests.get(demo.url + "/me", auth=("demo", "demo-password"), timeout=5).json()["method"] == "basic"
    )
    assert requests.get(demo.url + "/me", auth=("demo", "nope"), timeout=5).status_code == 401


def test_contact_crud_and_validation(demo):
    created = requests.post(
        demo.url + "/contacts", json={"email": "ada@example.com", "first_name": "Ada"}, headers=KEY, timeout=5
    )
    assert created.status_code == 201
    contact = created.json()
    url = f"{demo.url}/contacts/{contact['id']}"
    assert requests.get(url, headers=KEY, timeout=5).json()["first_name"] == "Ada"
    updated = requests.patch(url, json={"company": "Analytical"}, headers=KEY, timeout=5).json()
    assert updated["company"] == "Analytical" and updated["updated_at"] > contact["updated_at"]
    assert requests.delete(url, headers=KEY, timeout=5).status_code == 204
    assert requests.get(url, headers=KEY, timeout=5).status_code == 404
    bad = requests.post(demo.url + "/contacts", json={"first_name": "x"}, headers=KEY, timeout=5)
    assert bad.status_code == 422 and bad.json()["field"] == "email"
    bad = requests.post(demo.url + "/contacts", json={"email": "a@b", "age": 3}, headers=KEY, timeout=5)
    assert bad.status_code == 422 and bad.json()["field"] == "age"


def test_paging_is_stable_and_updated_since_and_tombstones(demo):
    demo.admin("seed", count=250)
    seen, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = requests.get(demo.url + "/contacts", params=params, headers=KEY, timeout=5).json()
        seen += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 250 and len({c["id"] for c in seen}) == 250
    assert [c["updated_at"] for c in seen] == sorted(c["updated_at"] for c in seen)
    mark = seen[-1]["updated_at"]
    requests.patch(f"{demo.url}/contacts/{seen[0]['id']}", json={"company": "X"}, headers=KEY, timeout=5)
    requests.delete(f"{demo.url}/contacts/{seen[1]['id']}", headers=KEY, timeout=5)
    changed = requests.get(
        demo.url + "/contacts",
        params={"updated_since": mark, "include_deleted": "true"},
        headers=KEY,
        timeout=5,
    ).json()["items"]
    # Inclusive: the record at `mark` itself comes back, then the two changes in order.
    assert [c["id"] for c in changed] == [seen[-1]["id"], seen[0]["id"], seen[1]["id"]]
    assert changed[-1] == {"id": seen[1]["id"], "deleted": True, "updated_at": changed[-1]["updated_at"]}
    live = requests.get(demo.url + "/contacts", params={"updated_since": mark}, headers=KEY, timeout=5).json()
    assert seen[1]["id"] not in [c["id"] for c in live["items"]]
    assert (
        requests.get(demo.url + "/contacts", params={"cursor": "!!"}, headers=KEY, timeout=5).status_code
        == 400
    )
    assert (
        requests.get(
            demo.url + "/contacts", params={"updated_since": "yesterday"}, headers=KEY, timeout=5
        ).status_code
        == 400
    )


def test_webhooks_are_delivered_signed_and_never_block(demo):
    received: list[tuple[dict, str]] = []
    receiver = Flask("receiver")

    @receiver.post("/hook")
    def hook():
        received.append((request.get_json(), request.headers["X-Demo-Signature"]))
        return "", 204

    @receiver.post("/slow")
    def slow():
        time.sleep(0.5)
        return "", 204

    receiver_url, server = serve(receiver)
    try:
        subscription = requests.post(
            demo.url + "/webhooks",
            json={"url": receiver_url + "/hook", "events": ["contact.created", "contact.deleted"]},
            headers=KEY,
            timeout=5,
        ).json()
        requests.post(demo.url + "/webhooks", json={"url": receiver_url + "/slow"}, headers=KEY, timeout=5)
        started = time.monotonic()
        contact = requests.post(
            demo.url + "/contacts", json={"email": "w@example.com"}, headers=KEY, timeout=5
        ).json()
        requests.patch(f"{demo.url}/contacts/{contact['id']}", json={"company": "c"}, headers=KEY, timeout=5)
        requests.delete(f"{demo.url}/contacts/{contact['id']}", headers=KEY, timeout=5)
        assert time.monotonic() - started < 0.45  # the slow subscriber did not hold the requests
        assert demo.dispatcher.wait_idle(15)
        assert [event["type"] for event, _ in received] == ["contact.created", "contact.deleted"]
        event, signature = received[0]
        body = json.dumps(event, separators=(",", ":")).encode()
        assert signature == sign(subscription["secret"], body) and event["data"]["id"] == contact["id"]
    finally:
        server.shutdown()


def test_faults_forced_and_seeded(demo):
    demo.admin("faults", fail_next=[429, 500], retry_after_seconds=7)
    first = requests.get(demo.url + "/me", headers=KEY, timeout=5)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert requests.get(demo.url + "/me", headers=KEY, timeout=5).status_code == 500
    assert requests.get(demo.url + "/me", headers=KEY, timeout=5).status_code == 200

    def pattern() -> list[int]:
        demo.admin("faults", rate_429=0.2, rate_500=0.2, seed=42)
        return [requests.get(demo.url + "/me", headers=KEY, timeout=5).status_code for _ in range(30)]

    statuses = pattern()
    assert statuses == pattern()  # same seed, same faults
    assert {200, 429, 500} <= set(statuses)
    demo.admin("faults", rate_429=0, rate_500=0)
    state = requests.get(demo.url + "/_admin/state", timeout=5).json()
    assert state["stats"]["faults429"] >= 1 and state["faults"]["rate_429"] == 0


def test_oauth2_code_and_refresh_grants(demo):
    redirect = requests.get(
        demo.url + "/oauth/authorize",
        allow_redirects=False,
        timeout=5,
        params={
            "response_type": "code",
            "client_id": "demo-client",
            "redirect_uri": "http://cb.test/done",
            "state": "s1",
        },
    )
    assert redirect.status_code == 302
    query = parse_qs(urlsplit(redirect.headers["Location"]).query)
    assert query["state"] == ["s1"]
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": "http://cb.test/done",
        "client_id": "demo-client",
        "client_secret": "demo-secret",
    }
    tokens = requests.post(demo.url + "/oauth/token", data=form, timeout=5).json()
    assert tokens["refresh_token"] and tokens["expires_in"] == 3600
    assert (
        requests.post(demo.url + "/oauth/token", data=form, timeout=5).status_code == 400
    )  # single-use code
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(demo.url + "/me", headers=bearer, timeout=5).json()["method"] == "oauth2"
    demo.admin("oauth", revoke_access_tokens=True)
    expired = requests.get(demo.url + "/me", headers=bearer, timeout=5)
    assert expired.status_code == 401
    refreshed = requests.post(
        demo.url + "/oauth/token",
        auth=("demo-client", "demo-secret"),
        timeout=5,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    ).json()
    assert "refresh_token" not in refreshed  # not rotated by default
    assert (
        requests.get(
            demo.url + "/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"}, timeout=5
        ).status_code
        == 200
    )
    wrong = requests.post(demo.url + "/oauth/token", data={**form, "client_secret": "x"}, timeout=5)
    assert wrong.status_code == 401


def test_state_file_survives_a_restart(tmp_path):
    path = tmp_path / "demo.json"
    app = create_app(DemoState(path=path))
    client = app.test_client()
    created = client.post("/contacts", json={"email": "p@example.com"}, headers=KEY).get_json()
    again = create_app(DemoState(path=path)).test_client()
    assert again.get(f"/contacts/{created['id']}", headers=KEY).get_json()["email"] == "p@example.com"
    assert (
        again.post("/contacts", json={"email": "q@example.com"}, headers=KEY).get_json()["id"]
        != created["id"]
    )
