"""Filters: a list of conditions over a value, used by the `filter` node and by links.

    {"match": "all",                       # or "any"; default "all"
     "conditions": [{"value": "{{ input.score }}", "operator": "gte", "to": 50}]}

`value` and `to` are templates (or literals) rendered over the node's template context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.connectors.errors import TemplateError, TemplateRenderError
from engine.connectors.templates import compile_tree, render_tree
from engine.errors import ValidationFailed

_MISSING = object()


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(left: Any, right: Any) -> bool:
        if left is _MISSING or left is None or right is None:
            return False
        try:
            return op(left, right)
        except TypeError:
            return False

    return check


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return right in left
    if isinstance(left, list | tuple):
        return right in left
    if isinstance(left, Mapping):
        return right in left
    return False


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda left, right: left is not _MISSING and left == right,
    "ne": lambda left, right: left is _MISSING or left != right,
    "gt": _compare(lambda left, right: left > right),
    "gte": _compare(lambda left, right: left >= right),
    "lt": _compare(lambda left, right: left < right),
    "lte": _compare(lambda left, right: left <= right),
    "contains": lambda left, right: left is not _MISSING and _contains(left, right),
    "in": lambda left, right: left is not _MISSING and isinstance(right, list | str) and left in right,
    "exists": lambda left, _right: left is not _MISSING and left is not None,
    "not-exists": lambda left, _right: left is _MISSING or left is None,
}
UNARY_OPERATORS = frozenset({"exists", "not-exists"})


def validate_filter(spec: Any, field: str, where: str) -> None:
    """Raise ValidationFailed naming `field` when `spec` is not a valid filter.

    `where` names the node or link in the message (e.g. "node 'hot'")."""
    if not isinstance(spec, Mapping):
        raise ValidationFailed(f"{where}: the filter must be an object", field=field)
    if spec.get("match", "all") not in ("all", "any"):
        raise ValidationFailed(f"{where}: match must be 'all' or 'any'", field=f"{field}.match")
    conditions = spec.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        raise ValidationFailed(
            f"{where}: conditions is required (a non-empty list)", field=f"{field}.conditions"
        )
    for index, condition in enumerate(conditions):
        at = f"{field}.conditions[{index}]"
        if not isinstance(condition, Mapping):
            raise ValidationFailed(f"{where}: each condition must be an object", field=at)
        if "value" not in condition:
            raise ValidationFailed(f"{where}: a condition needs a value", field=f"{at}.value")
        operator = condition.get("operator", "eq")
        if operator not in OPERATORS:
            raise ValidationFailed(
                f"{where}: unknown operator {operator!r}; use one of {sorted(OPERATORS)}",
                field=f"{at}.operator",
            )
        if operator not in UNARY_OPERATORS and "to" not in condition:
            raise ValidationFailed(f"{where}: operator {operator!r} needs 'to'", field=f"{at}.to")
        for name in ("value", "to"):
            try:
                compile_tree(condition.get(name))
            except TemplateError as error:
                raise ValidationFailed(f"{where}: bad template: {error.message}", field=f"{at}.{name}")


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    try:
        return render_tree(value, context, drop_none=False)
    except TemplateRenderError:
        return _MISSING


def filter_passes(spec: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """True when the (validated) filter accepts the template context."""
    results = []
    for condition in spec["conditions"]:
        operator = condition.get("operator", "eq")
        left = _render(condition["value"], context)
        right = None if operator in UNARY_OPERATORS else _render(condition.get("to"), context)
        results.append(OPERATORS[operator](left, None if right is _MISSING else right))
    return all(results) if spec.get("match", "all") == "all" else any(results)
