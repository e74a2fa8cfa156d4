"""Console users: RS256 tokens of AUTH0_DOMAIN, checked against a JWKS served locally."""

from __future__ import annotations

import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from engine.app import create_app
from engine.domain import tenancy
from tests.conftest import make_env
from tests.factories import auth_header, create_workspace

CLIENT_ID = "console-client"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_domain(signing_key):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")

    @Request.application
    def app(request):
        if request.path == "/.well-known/jwks.json":
            return Response(json.dumps({"keys": [jwk]}), content_type="application/json")
        return Response("not found", status=404)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def engine_env(stack, test_id, jwks_domain):
    return make_env(stack, test_id, AUTH0_DOMAIN=jwks_domain, AUTH0_CLIENT_ID=CLIENT_ID)


def _console_token(key, domain: str, workspace_key: str, **overrides) -> str:
    claims = {
        "iss": domain.rstrip("/") + "/",
        "aud": CLIENT_ID,
        "sub": "auth0|ada",
        "workspaceKey": workspace_key,
        "exp": int(time.time()) + 600,
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def test_console_user_acts_as_workspace_admin(config, services, signing_key, jwks_domain):
    tenancy.clear_caches()
    client = create_app(config, services).test_client()
    workspace, _ = create_workspace(services)
    token = _console_token(signing_key, jwks_domain, workspace.key)
    assert client.get("/customers", headers=auth_header(token)).status_code == 200
    # Wrong audience, wrong key, expired, unknown workspace: 401 with a reason.
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        _console_token(signing_key, jwks_domain, workspace.key, aud="someone-else"),
        _console_token(other_key, jwks_domain, workspace.key),
        _console_token(signing_key, jwks_domain, workspace.key, exp=int(time.time()) - 60),
        _console_token(signing_key, jwks_domain, "no-such-workspace"),
    ):
        response = client.get("/customers", headers=auth_header(bad))
        assert response.status_code == 401 and response.get_json()["error"]["message"]
    # A console user is not a platform admin.
    assert client.get("/workspaces", headers=auth_header(token)).status_code == 403
