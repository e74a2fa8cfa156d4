"""The language layer's policy: the guards RestrictedPython calls, the builtins and the modules
custom code may use.

RestrictedPython rewrites attribute reads, subscripts, iteration, writes and prints into calls of
the guards below; whatever these guards hand out is reachable by the code. So the rule here is
allow-listing: curated module proxies instead of module objects, a builtins dict built name by
name, and a `_getattr_` that refuses every private name, format-string traversal and every
introspection attribute (frames, code, tracebacks, generators, coroutines).
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import hashlib
import itertools
import json
import math
import random
import re
import string
import time
import types
import uuid
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import full_write_guard
from RestrictedPython.transformer import INSPECT_ATTRIBUTES


class ForbiddenError(Exception):
    """Custom code used something the sandbox refuses."""


FORBIDDEN_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES) | {
    # Frame, generator and coroutine internals not starting with "_" (CVE-2023-37271 and kin).
    "gi_frame",
    "gi_code",
    "gi_yieldfrom",
    "gi_running",
    "gi_suspended",
    "cr_frame",
    "cr_code",
    "cr_await",
    "cr_origin",
    "ag_frame",
    "ag_code",
    "ag_await",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "f_code",
    "f_trace",
    "tb_frame",
    "tb_next",
    # str.format / format_map walk attributes by name (CVE-2023-41039).
    "format",
    "format_map",
    # string.Formatter's traversal helpers, refused on any object just in case.
    "get_field",
    "get_value",
    "vformat",
    # Module and class introspection that hands out namespaces.
    "mro",
    "func_globals",
    "func_code",
}
"""Refused on every object. `format` is refused for all objects, not only str: a user rarely
needs it (f-strings and format() do the job) and the check cannot be fooled by str subclasses."""


def guarded_getattr(obj: Any, name: str, default: Any = None, *, _raise: bool = True) -> Any:
    """`_getattr_`: obj.name for custom code, refusing private, dunder and introspection names."""
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name.startswith("_"):
        raise ForbiddenError(f'attribute "{name}" is forbidden: names starting with "_" are private')
    if name in FORBIDDEN_ATTRIBUTES:
        raise ForbiddenError(f'attribute "{name}" is forbidden in custom code')
    if name == "obj" and isinstance(obj, BaseException):
        # AttributeError.obj hands back the object a lookup failed on (CVE-2024-47532).
        raise ForbiddenError('attribute "obj" of an exception is forbidden in custom code')
    if isinstance(
        obj,
        (
            types.FrameType,
            types.CodeType,
            types.TracebackType,
            types.GeneratorType,
            types.CoroutineType,
            types.AsyncGeneratorType,
        ),
    ):
        raise ForbiddenError(f'attribute "{name}" of a {type(obj).__name__} object is forbidden')
    if isinstance(obj, types.ModuleType):
        # Real modules are never handed out; if one leaks through, refuse to walk it.
        raise ForbiddenError("module attributes are forbidden in custom code")
    if _raise:
        return getattr(obj, name)
    return getattr(obj, name, default)


def safe_getattr_builtin(obj: Any, name: str, *default: Any) -> Any:
    """The `getattr` builtin offered to custom code: the guarded one."""
    if default:
        try:
            return guarded_getattr(obj, name)
        except AttributeError:
            return default[0]
    return guarded_getattr(obj, name)


def safe_hasattr(obj: Any, name: str) -> bool:
    """The `hasattr` builtin offered to custom code."""
    try:
        guarded_getattr(obj, name)
    except (AttributeError, ForbiddenError):
        return False
    return True


def guarded_getitem(obj: Any, index: Any) -> Any:
    """`_getitem_`: obj[index]. Containers handed to custom code hold only its own data."""
    if isinstance(obj, types.ModuleType):
        raise ForbiddenError("subscripting modules is forbidden")
    return obj[index]


def guarded_getiter(obj: Any) -> Any:
    """`_getiter_`: iter(obj)."""
    return iter(obj)


def guarded_write(obj: Any) -> Any:
    """`_write_`: lets code write into dicts and lists; other objects refuse attribute writes."""
    return full_write_guard(obj)


_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": lambda a, b: a + b,
    "-=": lambda a, b: a - b,
    "*=": lambda a, b: a * b,
    "/=": lambda a, b: a / b,
    "//=": lambda a, b: a // b,
    "%=": lambda a, b: a % b,
    "**=": lambda a, b: a**b,
    "<<=": lambda a, b: a << b,
    ">>=": lambda a, b: a >> b,
    "|=": lambda a, b: a | b,
    "^=": lambda a, b: a ^ b,
    "&=": lambda a, b: a & b,
    "@=": lambda a, b: a @ b,
}


def guarded_inplacevar(op: str, left: Any, right: Any) -> Any:
    """`_inplacevar_`: `left op= right` for names (e.g. `total += x`)."""
    try:
        operation = _INPLACE_OPERATORS[op]
    except KeyError:
        raise ForbiddenError(f"in-place operator {op} is forbidden")
    if isinstance(left, list) and op == "+=":
        left.extend(right)  # keep list identity, as Python does
        return left
    return operation(left, right)


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`_apply_`: calls with *args/**kwargs."""
    return func(*args, **kwargs)


class ModuleProxy:
    """A read-only stand-in for an allowed module: only the listed names, nothing it imported."""

    __slots__ = ("_proxy_name", "_proxy_members")

    def __init__(self, name: str, members: dict[str, Any]):
        object.__setattr__(self, "_proxy_name", name)
        object.__setattr__(self, "_proxy_members", dict(members))

    def __getattr__(self, attribute: str) -> Any:
        try:
            return self._proxy_members[attribute]
        except KeyError:
            raise ForbiddenError(
                f'"{self._proxy_name}.{attribute}" is not available in custom code'
            ) from None

    def __setattr__(self, attribute: str, value: Any) -> None:
        raise ForbiddenError(f'modules are read-only in custom code ("{self._proxy_name}.{attribute}")')

    def __repr__(self) -> str:
        return f"<module {self._proxy_name} (sandboxed)>"


def _public(
    module: types.ModuleType, names: list[str] | None = None, exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    chosen = names if names is not None else [n for n in dir(module) if not n.startswith("_")]
    members = {}
    for name in chosen:
        value = getattr(module, name)
        if name in exclude or isinstance(value, types.ModuleType):
            continue  # never hand out a module through a module
        members[name] = value
    return members


def _build_modules() -> dict[str, ModuleProxy]:
    specs: dict[str, dict[str, Any]] = {
        "json": _public(json, ["dumps", "loads", "JSONDecodeError"]),
        "math": _public(math),
        "datetime": _public(
            datetime, ["date", "datetime", "time", "timedelta", "timezone", "MINYEAR", "MAXYEAR"]
        ),
        "time": _public(
            time,
            [
                "time",
                "monotonic",
                "perf_counter",
                "sleep",
                "gmtime",
                "strftime",
                "strptime",
                "mktime",
                "time_ns",
            ],
        ),
        "re": _public(
            re,
            [
                "compile",
                "search",
                "match",
                "fullmatch",
                "split",
                "findall",
                "finditer",
                "sub",
                "subn",
                "escape",
                "error",
                "IGNORECASE",
                "I",
                "MULTILINE",
                "M",
                "DOTALL",
                "S",
                "VERBOSE",
                "X",
                "ASCII",
                "A",
                "UNICODE",
                "U",
            ],
        ),
        "decimal": _public(
            decimal,
            [
                "Decimal",
                "InvalidOperation",
                "DivisionByZero",
                "localcontext",
                "ROUND_HALF_UP",
                "ROUND_HALF_EVEN",
                "ROUND_DOWN",
                "ROUND_UP",
                "ROUND_FLOOR",
                "ROUND_CEILING",
                "ROUND_HALF_DOWN",
            ],
        ),
        "itertools": _public(itertools),
        "collections": _public(collections, ["OrderedDict", "defaultdict", "Counter", "deque", "ChainMap"]),
        "hashlib": _public(
            hashlib,
            [
                "md5",
                "sha1",
                "sha224",
                "sha256",
                "sha384",
                "sha512",
                "blake2b",
                "blake2s",
                "sha3_256",
                "sha3_512",
            ],
        ),
        "base64": _public(
            base64,
            [
                "b64encode",
                "b64decode",
                "urlsafe_b64encode",
                "urlsafe_b64decode",
                "b32encode",
                "b32decode",
                "b16encode",
                "b16decode",
            ],
        ),
        # uuid1/getnode may run a subprocess to find the MAC address: only the pure ones.
        "uuid": _public(uuid, ["uuid4", "uuid5", "uuid3", "UUID", "NAMESPACE_DNS", "NAMESPACE_URL"]),
        "random": _public(
            random,
            [
                "random",
                "randint",
                "randrange",
                "choice",
                "choices",
                "shuffle",
                "sample",
                "uniform",
                "gauss",
                "seed",
            ],
        ),
        # Constants only: string.Formatter and string.Template walk attributes.
        "string": _public(
            string,
            [
                "ascii_letters",
                "ascii_lowercase",
                "ascii_uppercase",
                "digits",
                "hexdigits",
                "octdigits",
                "punctuation",
                "printable",
                "whitespace",
            ],
        ),
    }
    return {name: ModuleProxy(name, members) for name, members in specs.items()}


ALLOWED_MODULES: dict[str, ModuleProxy] = _build_modules()
"""Name -> proxy. Importing anything else raises ForbiddenError naming the module."""


def guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> ModuleProxy:
    """`__import__` for custom code: allowed top-level modules only, as proxies."""
    if level != 0:
        raise ForbiddenError("relative imports are forbidden in custom code")
    if name not in ALLOWED_MODULES:
        raise ForbiddenError(
            f'import of module "{name}" is forbidden; allowed: {", ".join(sorted(ALLOWED_MODULES))}'
        )
    proxy = ALLOWED_MODULES[name]
    for member in fromlist or ():
        if member.startswith("_"):
            raise ForbiddenError(f'import of "{name}.{member}" is forbidden')
        getattr(proxy, member)  # raises ForbiddenError for names not offered
    return proxy
