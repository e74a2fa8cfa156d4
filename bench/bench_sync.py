"""Records synced per second from the demo app, beside raw paging with a plain HTTP client.

    .venv/bin/python -m bench.bench_sync [--quick]

In-process: the demo app on a real port (werkzeug, threaded), secantusdb and Redis from
`bench.common.Stack`. The baseline, in the same run against the same app: page /contacts with
`requests` (same page size), parsing the JSON and nothing else. The figures: a full sync of the
same contacts by the sync job's handler (`engine.datasources.sync.run_sync`), which stores every
record, records one `created` event per record, and saves its progress after every page:
1. with no flow subscribed (events recorded only);
2. with a no-op flow subscribed to data-record-created (each event handed to the flows, which
   store it and queue its external-event job; no worker runs them here).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import requests

from bench.common import Stack, describe_machine, row

PAGE_SIZE = 100
CONTACTS_QUICK, CONTACTS_FULL = 2000, 10000
FLOW_CONTACTS_QUICK, FLOW_CONTACTS_FULL = 200, 1000
"""Fewer with a flow subscribed: each event is stored and queued as a job of its own (slow)."""
API_KEY = "demo-key"


def _raw_paging(url: str) -> tuple[int, float]:
    """Every contact through the cursor with a plain requests session: (records, seconds)."""
    records, cursor = 0, None
    started = time.perf_counter()
    with requests.Session() as session:
        while True:
            params = {"limit": PAGE_SIZE, **({"cursor": cursor} if cursor else {})}
            body = session.get(
                f"{url}/contacts", params=params, headers={"X-Api-Key": API_KEY}, timeout=30
            ).json()
            records += len(body["items"])
            cursor = body.get("nextCursor")
            if not cursor:
                return records, time.perf_counter() - started


def _noop_flow() -> dict:
    return {
        "key": "noop-on-create",
        "trigger": {"type": "data-record-created-trigger", "config": {"dataSource": "contacts"}},
        "nodes": [
            {"key": "noop", "type": "transform-data", "config": {"mapping": {"id": "{{ input.record.id }}"}}}
        ],
        "links": [{"from": "trigger", "to": "noop"}],
    }


def _timed_sync(services, url: str, *, with_flow: bool) -> tuple[dict, float, int]:
    from engine.jobs.registry import JobContext
    from tests import factories
    from tests.integration.datasources.sync_helpers import (
        connect_tenant,
        create_source,
        run_handler,
        sync_job,
    )

    tenant = connect_tenant(services, url)
    if with_flow:
        headers = factories.auth_header(tenant.admin)
        response = tenant.client.post("/flows", headers=headers, json=_noop_flow())
        assert response.status_code == 201, response.get_json()
        response = tenant.client.post(
            "/flow-instances",
            headers=headers,
            json={"flowId": "noop-on-create", "connectionId": tenant.connection["id"]},
        )
        assert response.status_code == 201, response.get_json()
    source = create_source(tenant, pageSize=PAGE_SIZE)
    job = sync_job(source, "full")
    started = time.perf_counter()
    result = run_handler(services, job, JobContext(services, job))
    seconds = time.perf_counter() - started
    handed = services.db["events"].count_documents({"dataSourceId": source["id"]})
    return result, seconds, handed


def _figure(services, count: int, *, with_flow: bool) -> dict:
    from tests.integration.datasources.sync_helpers import serve_demo

    demo, server = serve_demo()
    try:
        demo.admin("seed", count=count)
        raw_records, raw_seconds = _raw_paging(demo.url)
        assert raw_records == count
        result, seconds, handed = _timed_sync(services, demo.url, with_flow=with_flow)
        assert result["status"] == "completed" and result["created"] == count, result
    finally:
        server.shutdown()
        demo.app.extensions["demoapp"]["dispatcher"].stop()
    name = "sync: records/s, no-op flow subscribed" if with_flow else "sync: records/s, no flow subscribed"
    return row(
        name,
        count / seconds,
        "records/s",
        raw_records / raw_seconds,
        "plain requests paging",
        f"{count} contacts, pages of {PAGE_SIZE}, full sync (store + created events); {handed} events "
        f"handed to the flows; sync {seconds:.2f} s vs raw {raw_seconds:.2f} s",
        digits=1,
    )


def run(quick: bool) -> list[dict]:
    from engine.config import load_config
    from engine.services import Services
    from engine.store.mongo import ensure_indexes

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with Stack() as stack:
        services = Services.from_config(load_config(stack.engine_env("sync")))
        try:
            ensure_indexes(services.db)
            services.blobs.ensure_buckets()
            return [
                _figure(services, CONTACTS_QUICK if quick else CONTACTS_FULL, with_flow=False),
                _figure(services, FLOW_CONTACTS_QUICK if quick else FLOW_CONTACTS_FULL, with_flow=True),
            ]
        finally:
            services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(describe_machine())
    for result in run(args.quick):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
