"""`connector` references: the runner reads a connector's Python operation from its archive in S3.

Connectors are uploaded through the engine (engine.domain.integrations.upload_connector) into the
test stack's real S3 server; the runner (a real process) resolves them by reference.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from engine.domain.integrations import upload_connector
from engine.ids import new_id
from engine.store.blobs import connector_archive_key
from examples.connectors.build import build_connector_zip
from sandbox.client import ConnectorReference, JobLimits
from sandbox.connectors import ConnectorSources
from sandbox.errors import InvalidJob, RunnerUnavailable
from sandbox.settings import ConnectorStoreSettings
from tests.conftest import make_env
from tests.integration.sandbox.conftest import (
    CONNECTORS_BUCKET,
    S3_SECRET_VALUE,
    free_port,
    start_runner,
    stop_runner,
)

SPEC = """\
key: runner-demo
name: Runner demo
version: {version}
baseUri: "{{{{ connection.baseUrl }}}}"
auth:
  type: api-key
  fields:
    type: object
    properties:
      baseUrl: {{type: string}}
      apiKey: {{type: string, format: password}}
  apiKey: {{in: header, name: X-Api-Key, value: "{{{{ connection.apiKey }}}}"}}
operations:
  me:
    method: GET
    path: /me
  double:
    file: operations/double.py
  divide:
    file: operations/divide.py
  spin:
    file: operations/spin.py
"""

DOUBLE = """\
def run(input, ctx):
    print("doubling", input["n"])
    return {"doubled": input["n"] * 2, "region": ctx.connection.get("region"), "version": VERSION}
"""

DIVIDE = """\
def run(input, ctx):
    total = input["total"]
    return total / input["parts"]
"""

SPIN = """\
def run(input, ctx):
    while True:
        pass
"""


@pytest.fixture
def engine_env(stack, test_id):
    """The engine uploads into the connector runner's bucket."""
    return make_env(stack, test_id, CONNECTORS_S3_BUCKET=CONNECTORS_BUCKET)


def build_archive(folder: Path, version: str) -> bytes:
    (folder / "operations").mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC.format(version=version))
    (folder / "operations" / "double.py").write_text(f"VERSION = {version!r}\n" + DOUBLE)
    (folder / "operations" / "divide.py").write_text(DIVIDE)
    (folder / "operations" / "spin.py").write_text(SPIN)
    return build_connector_zip(folder)


def upload(services, tmp_path: Path, workspace_id: str, version: str = "1.0.0") -> ConnectorReference:
    """Upload a version through the engine; the reference of its `double` operation, with its digest."""
    data = build_archive(tmp_path / version, version)
    upload_connector(services, workspace_id, data)
    document = services.db["connector_versions"].find_one(
        {"workspaceId": workspace_id, "key": "runner-demo", "version": version}
    )
    return ConnectorReference(workspace_id, "runner-demo", version, "double", document["sha256"])


def reference_document(reference: ConnectorReference, **changes) -> dict:
    document = reference.to_document()
    document.update(changes)
    return {key: value for key, value in document.items() if value is not None}


def test_python_operation_runs_by_reference(services, tmp_path, connector_runner):
    reference = upload(services, tmp_path, new_id("ws"))
    client = connector_runner.client

    result = client.run_connector_operation(reference, {"n": 21}, connection={"region": "eu"})

    assert result.ok, result.error
    assert result.result == {"doubled": 42, "region": "eu", "version": "1.0.0"}
    assert "doubling 21" in result.logs
    # Without the digest the version's only archive is used.
    unsigned = ConnectorReference(reference.workspace_id, reference.key, reference.version, "double")
    assert client.run_connector_operation(unsigned, {"n": 2}).result["doubled"] == 4


def test_a_referenced_operation_fails_and_is_limited_like_inline_code(services, tmp_path, connector_runner):
    reference = upload(services, tmp_path, new_id("ws"))
    client = connector_runner.client
    divide = ConnectorReference(reference.workspace_id, reference.key, reference.version, "divide")

    by_reference = client.run_connector_operation(divide, {"total": 1, "parts": 0})
    inline = client.run_job(DIVIDE, {"total": 1, "parts": 0})

    assert not by_reference.ok
    assert by_reference.error == inline.error
    assert by_reference.error.type == "runtime_error" and by_reference.error.line == 3
    spin = ConnectorReference(reference.workspace_id, reference.key, reference.version, "spin")
    timed_out = client.run_connector_operation(spin, None, limits=JobLimits(timeout_seconds=0.3))
    assert timed_out.error.type == "time_limit"
    assert 250 <= timed_out.duration_ms < 2000


def test_versions_are_cached_and_each_runs_its_own_code(services, tmp_path, connector_runner):
    workspace = new_id("ws")
    first = upload(services, tmp_path, workspace, "1.0.0")
    client = connector_runner.client
    assert client.run_connector_operation(first, {"n": 1}).ok

    # A version uploaded after a miss is found (misses are not cached).
    missing = ConnectorReference(workspace, "runner-demo", "2.0.0", "double")
    with pytest.raises(InvalidJob) as caught:
        client.run_connector_operation(missing, {"n": 1})
    assert caught.value.field == "connector.version"
    second = upload(services, tmp_path, workspace, "2.0.0")
    assert client.run_connector_operation(second, {"n": 1}).result["version"] == "2.0.0"

    # Versions are immutable: once read, the archive is not needed again.
    services.blobs.delete(
        CONNECTORS_BUCKET,
        connector_archive_key(first.workspace_id, first.key, first.version, first.sha256 or ""),
    )
    assert client.run_connector_operation(first, {"n": 1}).result["version"] == "1.0.0"


def test_the_cache_holds_at_most_its_bound(services, tmp_path, stack):
    workspace = new_id("ws")
    references = [upload(services, tmp_path, workspace, f"1.0.{n}") for n in range(3)]
    sources = ConnectorSources(
        ConnectorStoreSettings(
            CONNECTORS_BUCKET, endpoint_url=stack.s3.uri, access_key_id="t", secret_access_key="t"
        ),
        max_versions=2,
    )
    for reference in references:
        assert f"VERSION = {reference.version!r}" in sources.source_of(reference)
    assert sources.cached_versions() == 2
    tiny = ConnectorSources(sources.settings, max_bytes=10)  # a version larger than the bound is not kept
    assert "def run" in tiny.source_of(references[0])
    assert tiny.cached_versions() == 0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"key": "no-such-connector"}, "connector.key"),
        ({"workspace_id": "ws_other"}, "connector.key"),
        ({"version": "9.9.9"}, "connector.version"),
        ({"version": "9.9.9", "sha256": None}, "connector.version"),
        ({"sha256": "0" * 64}, "connector.sha256"),
        ({"operation": "nope"}, "connector.operation"),
        ({"operation": "me"}, "connector.operation"),  # an HTTP operation
        ({"version": 1}, "connector.version"),
        ({"version": "1.0"}, "connector.version"),
        ({"key": "../x"}, "connector.key"),
        ({"workspace_id": "a/b"}, "connector.workspace_id"),
        ({"operation": None}, "connector.operation"),
        ({"sha256": "XYZ"}, "connector.sha256"),
        ({"surprise": 1}, "connector.surprise"),
    ],
)
def test_references_to_nothing_stored_name_the_field(services, tmp_path, connector_runner, changes, field):
    reference = upload(services, tmp_path, new_id("ws"))
    body = {"connector": reference_document(reference, **changes), "input": {"n": 1}}

    response = connector_runner.post(body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["field"] == field
    assert error["message"].startswith(field + ": ")


def test_code_and_connector_are_exclusive(services, tmp_path, connector_runner):
    reference = upload(services, tmp_path, new_id("ws"))
    both = connector_runner.post({"code": "x = 1", "connector": reference.to_document()})
    neither = connector_runner.post({"input": 1})
    not_an_object = connector_runner.post({"connector": "runner-demo"})

    assert (both.status_code, both.json()["error"]["field"]) == (400, "connector")
    assert (neither.status_code, neither.json()["error"]["field"]) == (400, "code")
    assert (not_an_object.status_code, not_an_object.json()["error"]["field"]) == (400, "connector")


def test_a_runner_without_a_connector_store_refuses_references(runner):
    reference = ConnectorReference("ws_1", "runner-demo", "1.0.0", "double")
    with pytest.raises(InvalidJob) as caught:
        runner.client.run_connector_operation(reference, {"n": 1})
    assert caught.value.field == "connector"
    assert "CONNECTORS_S3_BUCKET" in caught.value.message


def test_unreachable_s3_is_a_503_and_the_runner_keeps_serving():
    dead = start_runner(
        CONNECTORS_S3_BUCKET=CONNECTORS_BUCKET,
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
    )
    try:
        reference = ConnectorReference("ws_1", "runner-demo", "1.0.0", "double")
        response = dead.post({"connector": reference.to_document()})
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "runner_error"
        assert "connector store" in response.json()["error"]["message"]
        with pytest.raises(RunnerUnavailable):
            dead.client.run_connector_operation(reference, None)
        assert dead.client.run_job("def run(i, c):\n    return i\n", 7).result == 7
    finally:
        stop_runner(dead)


def test_jobs_never_see_the_runner_s3_credentials(services, tmp_path, connector_runner):
    reference = upload(services, tmp_path, new_id("ws"))
    assert connector_runner.client.run_connector_operation(reference, {"n": 1}).ok
    zygote = next(
        child
        for child in psutil.Process(connector_runner.process.pid).children(recursive=True)
        if "sandbox.zygote" in " ".join(child.cmdline())
    )
    for process in [zygote, *zygote.children()]:
        try:
            environ = Path(f"/proc/{process.pid}/environ").read_bytes()
        except (ProcessLookupError, FileNotFoundError):
            # A job process ends with its job, possibly since it was listed; the zygote they are
            # all forked from (and inherit their environment from) must be there.
            assert process is not zygote
            continue
        assert S3_SECRET_VALUE.encode() not in environ
        assert b"AWS_" not in environ and b"CONNECTORS_S3_BUCKET" not in environ
