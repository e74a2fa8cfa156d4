"""The request template language: syntax checks, rendering, type preservation."""

from __future__ import annotations

import pytest

from engine.connectors.errors import TemplateError, TemplateRenderError
from engine.connectors.templates import compile_template, compile_tree, render_tree

CONTEXT = {
    "input": {
        "email": "a@b.test",
        "limit": 25,
        "flag": True,
        "tags": ["x", "y"],
        "nested": {"k-1": 5},
        "none": None,
    },
    "connection": {"apiKey": "secret-key-123", "subdomain": "acme"},
    "parameters": {"clientId": "cid"},
}


def render(source: str):
    return compile_template(source).render(CONTEXT)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ input.email }}", "a@b.test"),
        ("{{input.limit}}", 25),
        ("{{ input.flag }}", True),
        ("{{ input.tags }}", ["x", "y"]),
        ("{{ input.tags[1] }}", "y"),
        ('{{ input.nested["k-1"] }}', 5),
        ("{{ input.nested.k-1 }}", 5),
        ("https://{{ connection.subdomain }}.app.test", "https://acme.app.test"),
        ("n={{ input.limit }} f={{ input.flag }} t={{ input.tags }}", 'n=25 f=true t=["x","y"]'),
        ("{{ input.missing | default(100) }}", 100),
        ('{{ input.none | default("z") }}', "z"),
        ("{{ input.missing | default }}", None),
        ("{{ input.limit | string }}", "25"),
        ("{{ connection.subdomain | upper }}", "ACME"),
        ("{{ input.tags | json }}", '["x","y"]'),
        ("{{ parameters.clientId }}", "cid"),
        ("plain text", "plain text"),
    ],
)
def test_render(source, expected):
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ secrets.all }}", "unknown name"),
        ("{{ input. }}", "expected a name"),
        ("{{ input.a | eval }}", "unknown filter"),
        ("{{ input.a | default(nope) }}", "JSON literal"),
        ("{{ input.a b }}", "unexpected"),
        ("{{ }}", "malformed"),
        ("{{ input.a ", "unbalanced"),
        ("input.a }}", "unbalanced"),
        ("{{ input.a() }}", "unexpected '('"),
    ],
)
def test_syntax_errors_are_named(source, problem):
    with pytest.raises(TemplateError) as caught:
        compile_template(source)
    assert problem in caught.value.message


def test_dunder_names_are_keys_not_attributes():
    # Nothing in the language reaches Python attributes: "__class__" is just a missing key.
    with pytest.raises(TemplateRenderError):
        render("{{ input.__class__ }}")
    assert compile_template("{{ input.__class__ }}").render({"input": {"__class__": "k"}}) == "k"


def test_missing_value_is_an_error_naming_the_path():
    with pytest.raises(TemplateRenderError) as caught:
        render("{{ input.nope.deeper }}")
    assert "input.nope.deeper" in caught.value.message


def test_render_tree_drops_optional_keys_and_keeps_types():
    body = {
        "email": "{{ input.email }}",
        "limit": "{{ input.limit }}",
        "cursor": "{{ input.cursor | default }}",
        "list": ["{{ input.flag }}", 3],
        "literal": 7,
    }
    assert render_tree(body, CONTEXT) == {"email": "a@b.test", "limit": 25, "list": [True, 3], "literal": 7}


def test_compile_tree_names_the_bad_field():
    with pytest.raises(TemplateError) as caught:
        compile_tree({"a": "ok", "b": {"c": ["fine", "{{ oops }}"]}}, "operations.x.body")
    assert caught.value.field == "operations.x.body.b.c[1]"


def test_path_escaping_encodes_interpolated_values_only():
    template = compile_template("/contacts/{{ input.id }}/notes")
    from urllib.parse import quote

    assert (
        template.render({"input": {"id": "../admin?x=1"}}, escape=lambda v: quote(v, safe=""))
        == "/contacts/..%2Fadmin%3Fx%3D1/notes"
    )
