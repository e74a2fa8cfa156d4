"""HTTP execution details that need no server: Retry-After, paths, pagination kinds, origin guard."""

from __future__ import annotations

import copy
import email.utils
import json

import pytest
import requests
from connector_helpers import MINIMAL_SPEC

from engine.connectors.errors import AppError
from engine.connectors.http import get_path, list_records, parse_retry_after
from engine.connectors.spec import ConnectorSpec

CREDENTIALS = {"subdomain": "acme", "apiKey": "k3y-very-secret"}


class FakeSession(requests.Session):
    """Answers from a list of (status, body) and records the requests."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code, response._content = status, json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request, response.url = request, request.url
        return response


def spec_with_pagination(pagination: dict) -> ConnectorSpec:
    document = copy.deepcopy(MINIMAL_SPEC)
    document["operations"]["list-contacts"]["response"]["pagination"] = pagination
    return ConnectorSpec.from_document(document)


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) == 1.0 and parse_retry_after("soon") == 1.0
    assert parse_retry_after("999999") == 3600.0
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30, abs=1)


def test_get_path():
    body = {"data": {"items": [{"id": 1}, {"id": 2}]}}
    assert get_path(body, "data.items.1.id") == 2
    assert get_path(body, "data.nothing.here") is None and get_path(body, None) is body


def test_page_number_pagination_stops_on_an_empty_page():
    spec = spec_with_pagination({"type": "page", "pageParam": "page"})
    session = FakeSession([(200, {"items": [1, 2]}), (200, {"items": [3]}), (200, {"items": []})])
    pages = list(list_records(spec, "contacts", CREDENTIALS, session=session))
    assert [p.records for p in pages] == [[1, 2], [3], []]
    assert "page=2" in session.sent[1].url and "page=3" in session.sent[2].url
    assert session.sent[0].headers["X-Api-Key"] == "k3y-very-secret"
    assert session.sent[0].url.startswith("https://acme.acme.test/api/contacts?limit=50")


def test_next_url_pagination_follows_same_origin_only():
    spec = spec_with_pagination({"type": "next-url", "urlPath": "links.next"})
    session = FakeSession(
        [(200, {"items": [1], "links": {"next": "/api/contacts?page=2"}}), (200, {"items": [2]})]
    )
    assert [p.records for p in list_records(spec, "contacts", CREDENTIALS, session=session)] == [[1], [2]]
    evil = FakeSession([(200, {"items": [1], "links": {"next": "https://evil.test/steal"}})])
    pages = list_records(spec, "contacts", CREDENTIALS, session=evil)
    next(pages)
    with pytest.raises(AppError) as caught:
        next(pages)
    assert "leave the app" in caught.value.message and len(evil.sent) == 1


def test_a_cursor_that_does_not_move_ends_the_listing():
    spec = ConnectorSpec.from_document(MINIMAL_SPEC)
    session = FakeSession([(200, {"items": [1], "next": "same"}), (200, {"items": [2], "next": "same"})])
    assert [p.records for p in list_records(spec, "contacts", CREDENTIALS, session=session)] == [[1], [2]]
