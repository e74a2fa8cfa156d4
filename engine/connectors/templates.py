"""A small, safe template language for connector requests.

    "{{ input.email }}"                      -> the value itself (type kept: a number stays a number)
    "Bearer {{ connection.token }}"          -> text
    "{{ input.limit | default(100) }}"       -> 100 when input.limit is missing or null
    "{{ input.cursor | default }}"           -> None when missing: the key is then left out

Why by hand and not Jinja: templates come from uploaded connectors and render inside API and
worker processes. We need only dotted look-ups and a few filters; Jinja, even sandboxed, is a
general expression language with a history of sandbox escapes. This grammar cannot call
anything, so there is nothing to escape from, and every template is checked at upload time.

Grammar of one `{{ ... }}`:
    expression := path ("|" filter)*
    path       := ROOT ("." NAME | "[" (INTEGER | STRING) "]")*
    filter     := NAME ("(" JSON-LITERAL ")")?
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.connectors.errors import TemplateError, TemplateRenderError

#: The names a template may start from. `parameters` are the integration's app-level parameters.
ROOTS = frozenset({"input", "connection", "parameters"})

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<name>{_NAME})
      | (?P<dot>\.)
      | \[\s*(?P<index>-?\d+|"(?:[^"\\]|\\.)*")\s*\]
      | (?P<pipe>\|)
      | \((?P<arg>(?:"(?:[^"\\]|\\.)*"|[^)])*)\)
    )""",
    re.VERBOSE,
)
_MISSING = object()


def _filter_default(value: Any, fallback: Any = None) -> Any:
    return fallback if value is _MISSING or value is None else value


def _defined(value: Any) -> Any:
    if value is _MISSING:
        raise KeyError
    return value


def _to_string(value: Any) -> str:
    return stringify(_defined(value))


def _to_int(value: Any) -> int:
    return int(_defined(value))


FILTERS: dict[str, Callable[..., Any]] = {
    "default": _filter_default,
    "string": _to_string,
    "int": _to_int,
    "lower": lambda value: _to_string(value).lower(),
    "upper": lambda value: _to_string(value).upper(),
    "json": lambda value: json.dumps(_defined(value), separators=(",", ":"), sort_keys=True),
}


@dataclass(frozen=True)
class _Filter:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Expression:
    """One `{{ ... }}`: a path from a root plus filters."""

    source: str
    path: tuple[str | int, ...]
    filters: tuple[_Filter, ...]

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        value: Any = context.get(str(self.path[0]), _MISSING)
        for step in self.path[1:]:
            value = _step(value, step)
        for f in self.filters:
            try:
                value = FILTERS[f.name](value, *f.args)
            except KeyError:
                raise TemplateRenderError(f"{self.source.strip()!r}: no value at {self._dotted()}")
            except (TypeError, ValueError) as error:
                raise TemplateRenderError(f"{self.source.strip()!r}: filter {f.name} failed: {error}")
        if value is _MISSING:
            raise TemplateRenderError(
                f"{self.source.strip()!r}: no value at {self._dotted()}", field=self._dotted()
            )
        return value

    def _dotted(self) -> str:
        return ".".join(str(step) for step in self.path)


def _step(value: Any, step: str | int) -> Any:
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            return value[step]
        return _MISSING
    if isinstance(value, Mapping):
        return value.get(step, _MISSING)
    return _MISSING


@dataclass(frozen=True)
class Template:
    """A compiled template string. `render` returns text, or the value itself when the whole
    string is one expression."""

    source: str
    parts: tuple[str | Expression, ...]

    @property
    def is_single_expression(self) -> bool:
        return len(self.parts) == 1 and isinstance(self.parts[0], Expression)

    def roots(self) -> frozenset[str]:
        return frozenset(str(p.path[0]) for p in self.parts if isinstance(p, Expression))

    def render(self, context: Mapping[str, Any], *, escape: Callable[[str], str] | None = None) -> Any:
        """Render over `context` (root name -> value). `escape` is applied to each interpolated
        value inside text (e.g. percent-encoding for URL paths), never to literal text."""
        if self.is_single_expression and escape is None:
            return self.parts[0].evaluate(context)  # type: ignore[union-attr]
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = stringify(part.evaluate(context))
                out.append(escape(text) if escape else text)
        return "".join(out)


def stringify(value: Any) -> str:
    """The text of a value inside a larger string: JSON spelling for null, booleans and containers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _parse_expression(source: str) -> Expression:
    position = 0
    tokens: list[tuple[str, str]] = []
    text = source.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise TemplateError(f"unexpected {text[position:].strip()[:20]!r} in {{{{{source}}}}}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind) or ""))
        position = match.end()
    stream: Iterator[tuple[str, str]] = iter(tokens)
    kind, value = next(stream, ("", ""))
    if kind != "name":
        raise TemplateError(f"empty or malformed expression {{{{{source}}}}}")
    if value not in ROOTS:
        raise TemplateError(f"unknown name {value!r} in {{{{{source}}}}}: start from one of {sorted(ROOTS)}")
    path: list[str | int] = [value]
    filters: list[_Filter] = []
    kind, value = next(stream, ("", ""))
    while kind in ("dot", "index"):
        if kind == "dot":
            kind, value = next(stream, ("", ""))
            if kind != "name":
                raise TemplateError(f"expected a name after '.' in {{{{{source}}}}}")
            path.append(value)
        else:
            path.append(json.loads(value) if value.startswith('"') else int(value))
        kind, value = next(stream, ("", ""))
    while kind == "pipe":
        kind, name = next(stream, ("", ""))
        if kind != "name" or name not in FILTERS:
            raise TemplateError(f"unknown filter {name!r} in {{{{{source}}}}}: use one of {sorted(FILTERS)}")
        args: tuple[Any, ...] = ()
        kind, value = next(stream, ("", ""))
        if kind == "arg":
            try:
                args = (json.loads(value),)
            except ValueError:
                raise TemplateError(f"filter argument must be a JSON literal in {{{{{source}}}}}")
            kind, value = next(stream, ("", ""))
        filters.append(_Filter(name, args))
    if kind:
        raise TemplateError(f"unexpected {value or '('!r} in {{{{{source}}}}}")
    return Expression(source, tuple(path), tuple(filters))


@lru_cache(maxsize=4096)  # the same few templates render for every request
def compile_template(source: str) -> Template:
    """Parse a template string; raise TemplateError naming the problem."""
    if not isinstance(source, str):
        raise TemplateError(f"a template must be a string, not {type(source).__name__}")
    parts: list[str | Expression] = []
    position = 0
    for match in _EXPRESSION.finditer(source):
        if match.start() > position:
            parts.append(source[position : match.start()])
        parts.append(_parse_expression(match.group(1)))
        position = match.end()
    if position < len(source):
        parts.append(source[position:])
    for part in parts:
        if isinstance(part, str) and ("{{" in part or "}}" in part):
            raise TemplateError(f"unbalanced '{{{{' or '}}}}' in {source!r}")
    return Template(source, tuple(parts))


def compile_tree(value: Any, field: str = "") -> None:
    """Check every string inside `value` (dicts, lists) is a valid template.

    Raises TemplateError whose `field` is the dotted path of the first bad string."""
    if isinstance(value, str):
        try:
            compile_template(value)
        except TemplateError as error:
            raise TemplateError(error.message, field=field or None)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            compile_tree(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            compile_tree(item, f"{field}[{index}]")


def render_tree(value: Any, context: Mapping[str, Any], *, drop_none: bool = True) -> Any:
    """Render every string inside `value`. With `drop_none`, object keys whose value renders
    to None are left out (that is how `| default` makes a query parameter or field optional)."""
    if isinstance(value, str):
        return compile_template(value).render(context)
    if isinstance(value, Mapping):
        rendered = {key: render_tree(item, context, drop_none=drop_none) for key, item in value.items()}
        return {k: v for k, v in rendered.items() if not (drop_none and v is None)}
    if isinstance(value, list):
        return [render_tree(item, context, drop_none=drop_none) for item in value]
    return value
