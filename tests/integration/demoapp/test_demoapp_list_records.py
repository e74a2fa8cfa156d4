"""list_records over the demo app: 5,000 contacts, incremental since, resuming after faults."""

from __future__ import annotations

import time

import pytest
import requests
from demo_helpers import API_KEY

from engine.connectors.errors import AppRateLimited, AppUnavailable
from engine.connectors.http import list_records

COUNT = 5000


def test_full_and_incremental_listing_of_5000_contacts(demo, session, api_key_spec):
    started = time.monotonic()
    demo.admin("seed", count=COUNT)
    credentials = {"baseUrl": demo.url, "apiKey": API_KEY}
    pages = list(list_records(api_key_spec, "contacts", credentials, session=session, page_size=500))
    assert len(pages) == COUNT // 500 and pages[-1].next_cursor is None
    ids = [record["id"] for page in pages for record in page.records]
    assert len(ids) == COUNT == len(set(ids))
    last_seen = pages[-1].records[-1]["updated_at"]

    changed = sorted(ids[::50])  # 100 contacts
    for contact_id in changed:
        session.patch(
            f"{demo.url}/contacts/{contact_id}",
            json={"company": "changed"},
            headers={"X-Api-Key": API_KEY},
            timeout=5,
        ).raise_for_status()
    deleted = ids[1:11]
    for contact_id in deleted:
        session.delete(f"{demo.url}/contacts/{contact_id}", headers={"X-Api-Key": API_KEY}, timeout=5)
    increment = [
        r
        for page in list_records(
            api_key_spec, "contacts", credentials, since=last_seen, session=session, page_size=30
        )
        for r in page.records
    ]
    # updated_since is inclusive: the last record of the full listing comes back once more.
    assert {r["id"] for r in increment} - {ids[-1]} == set(changed)
    assert all(r["company"] == "changed" for r in increment if r["id"] != ids[-1])
    assert time.monotonic() - started < 20


def test_resume_from_the_cursor_after_429_and_500(demo, session, api_key_spec):
    demo.admin("seed", count=1000)
    demo.admin("faults", rate_429=0.1, rate_500=0.1, seed=7, retry_after_seconds=3)
    credentials = {"baseUrl": demo.url, "apiKey": API_KEY}
    records, cursor, faults, retry_afters = [], None, 0, set()
    while True:
        try:
            for page in list_records(
                api_key_spec, "contacts", credentials, cursor=cursor, session=session, page_size=50
            ):
                records += page.records
                cursor = page.next_cursor
            break
        except AppRateLimited as error:
            faults += 1
            retry_afters.add(error.retry_after_seconds)
        except AppUnavailable:
            faults += 1
        assert faults < 100
    assert faults > 0 and retry_afters <= {3.0}
    assert len(records) == 1000 == len({r["id"] for r in records})


def test_unknown_collection(session, api_key_spec):
    from engine.connectors.errors import UnknownOperation

    with pytest.raises(UnknownOperation):
        next(list_records(api_key_spec, "deals", {}, session=session))


def test_seeding_is_fast(demo):
    started = time.monotonic()
    assert requests.post(demo.url + "/_admin/seed", json={"count": 20000}, timeout=30).json()["live"] == 20000
    assert time.monotonic() - started < 5
