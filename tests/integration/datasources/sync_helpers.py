"""Helpers of the data-source tests: the demo app on a real port, a workspace connected to it,
and running a sync job's handler in-process with the job system's JobContext."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests
from werkzeug.serving import make_server

from demoapp import DemoState, create_app
from engine.app import create_app as create_engine_app
from engine.ids import new_id
from engine.jobs.model import Job, JobState
from engine.jobs.registry import JobContext
from engine.services import Services
from tests import factories

API_KEY = "demo-key"


@dataclass
class DemoApp:
    url: str
    state: DemoState
    app: Any

    def admin(self, path: str, **body: Any) -> dict:
        response = requests.post(f"{self.url}/_admin/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def live_contacts(self) -> dict[str, dict[str, Any]]:
        with self.state.lock:
            return {k: dict(v) for k, v in self.state.contacts.items() if not v.get("deleted")}


def serve_demo() -> tuple[DemoApp, Any]:
    state = DemoState()
    app = create_app(state, seed=1)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return DemoApp(f"http://127.0.0.1:{server.server_port}", state, app), server


@dataclass
class Tenant:
    client: Any
    admin: str
    customer: str
    connection: dict[str, Any]
    workspace: Any


def connect_tenant(services: Services, demo_url: str, customer_internal_id: str = "c1") -> Tenant:
    """A workspace with the demo connector, an integration, and one customer's connection to the demo app."""
    client = create_engine_app(services.config, services).test_client()
    workspace, secret = factories.create_workspace(services)
    admin = factories.workspace_token(workspace, secret)
    factories.upload_demo_connector(client, admin)
    factories.create_integration(client, admin)
    customer = factories.customer_token(workspace, secret, customer_internal_id)
    connection = factories.create_connection(
        client, customer, credentials={"baseUrl": demo_url, "apiKey": API_KEY}
    )
    return Tenant(client, admin, customer, connection, workspace)


def create_source(tenant: Tenant, token: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"connectionId": tenant.connection["id"], "collection": "contacts", **fields}
    response = tenant.client.post(
        "/data-sources", json=body, headers=factories.auth_header(token or tenant.admin)
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


class Crash(BaseException):
    """Stands for the worker dying mid-sync (not an Exception: nothing in the sync catches it)."""


class CrashAfterPages(JobContext):
    """A JobContext whose should_stop() raises Crash once the saved progress reaches `pages`."""

    def __init__(self, services: Services, job: Job, pages: int):
        super().__init__(services, job)
        self.pages = pages

    def should_stop(self) -> bool:
        document = self.services.db["data_sources"].find_one({"_id": self.job.payload["dataSourceId"]})
        if (document.get("currentSync") or {}).get("pages", 0) >= self.pages:
            raise Crash()
        return super().should_stop()


def sync_job(source: dict[str, Any], mode: str, job_id: str | None = None) -> Job:
    return Job(
        id=job_id or new_id("job"),
        kind="data-source-sync",
        state=JobState.RUNNING,
        workspace_id="",
        customer_id=source.get("customerId", ""),
        connection_id=source["connectionId"],
        payload={"dataSourceId": source["id"], "mode": mode},
        launched_by="test",
        attempts=1,
    )


def run_handler(services: Services, job: Job, ctx: JobContext | None = None) -> dict[str, Any] | None:
    from engine.datasources.handlers import run_data_source_sync

    return run_data_source_sync(job, ctx or JobContext(services, job))
