"""Compiling custom code with RestrictedPython and building the namespace it runs in."""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import (
    guarded_delattr,
    guarded_iter_unpack_sequence,
    guarded_setattr,
    guarded_unpack_sequence,
    safe_builtins,
)

from sandbox.errors import ErrorType
from sandbox.policy import (
    ForbiddenError,
    guarded_apply,
    guarded_getattr,
    guarded_getitem,
    guarded_getiter,
    guarded_import,
    guarded_inplacevar,
    guarded_write,
    safe_getattr_builtin,
    safe_hasattr,
)

CODE_FILENAME = "<custom code>"
"""Frames of user code carry this filename; error line numbers are taken from them."""
MAX_SOURCE_BYTES = 1024 * 1024
"""Bigger sources are refused before parsing (a parser bomb must not cost the job its time)."""

_EXTRA_BUILTINS = [
    "list",
    "dict",
    "tuple",
    "set",
    "frozenset",
    "sorted",
    "reversed",
    "zip",
    "enumerate",
    "map",
    "filter",
    "sum",
    "min",
    "max",
    "any",
    "all",
    "iter",
    "next",
    "bytes",
    "bytearray",
    "format",
    "ascii",
    "bin",
    "NotImplemented",
    "StopAsyncIteration",
    "RecursionError",
    "TimeoutError",
    "ConnectionError",
    "ExceptionGroup",
    "BaseExceptionGroup",
]
"""Added to RestrictedPython's safe_builtins. Its docs warn that sorted/zip/tuple... iterate in C,
bypassing `_getiter_`; that matters only for guards that protect containers, which ours do not."""

REFUSED_BUILTINS = [
    "open",
    "eval",
    "exec",
    "compile",
    "globals",
    "locals",
    "vars",
    "dir",
    "type",
    "input",
    "breakpoint",
    "help",
    "memoryview",
    "object",
    "super",
    "classmethod",
    "staticmethod",
    "property",
    "exit",
    "quit",
    "id",
]
"""Present as stubs raising ForbiddenError, so the user reads "open() is forbidden", not a NameError.
`type` is refused because type(name, bases, dict) builds classes with dunder methods; `id` leaks
addresses."""

MAX_REPORTED_ERRORS = 5
_LINE = re.compile(r"Line (\d+)")


@dataclass(frozen=True)
class CompileFailure(Exception):
    """The code was refused before running."""

    type: ErrorType
    message: str
    line: int | None


def compile_source(source: str) -> CodeType:
    """Compile user source with RestrictedPython, or raise CompileFailure (syntax_error or forbidden)."""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise CompileFailure(ErrorType.INVALID_REQUEST, f"code is larger than {MAX_SOURCE_BYTES} bytes", None)
    try:
        # Parse first ourselves: a real SyntaxError keeps its line and message apart from policy errors.
        tree = ast.parse(source, CODE_FILENAME, "exec")
    except SyntaxError as error:
        raise CompileFailure(ErrorType.SYNTAX_ERROR, f"{error.msg}", error.lineno)
    except (RecursionError, MemoryError, ValueError) as error:
        raise CompileFailure(ErrorType.SYNTAX_ERROR, f"code cannot be parsed: {error}", None)
    tree = ast.fix_missing_locations(_ItemAugmentedAssignment().visit(tree))
    try:
        result = compile_restricted_exec(tree, CODE_FILENAME)
    except RecursionError:
        raise CompileFailure(ErrorType.SYNTAX_ERROR, "code is nested too deeply", None)
    if result.errors:
        match = _LINE.search(result.errors[0])
        # Every refusal, not only the first: "gi_frame" hides behind "f_globals" in a frame walk.
        messages = [
            _LINE.sub("", error, count=1).lstrip(": ").strip()
            for error in result.errors[:MAX_REPORTED_ERRORS]
        ]
        raise CompileFailure(ErrorType.FORBIDDEN, "; ".join(messages), int(match.group(1)) if match else None)
    assert result.code is not None
    return result.code


class _ItemAugmentedAssignment(ast.NodeTransformer):
    """`d[k] += v` becomes `d[k] = d[k] + v` (and `o.a -= v`, `o.a = o.a - v`), then goes through
    RestrictedPython's guards like any read and write. RestrictedPython refuses augmented
    assignment to items and attributes outright, yet it is how people count. Only where reading
    the container and key twice cannot differ from reading them once (names, constants, attribute
    and item chains, tuples of those); anything else stays refused. Unlike `+=`, the new value is always a
    new object (`d['l'] += [1]` rebinds `d['l']` to a new list, as `d['l'] = d['l'] + [1]` would)."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        target = node.target
        if isinstance(target, ast.Subscript) and _repeatable(target.value) and _repeatable(target.slice):
            read: ast.expr = ast.Subscript(value=target.value, slice=target.slice, ctx=ast.Load())
        elif isinstance(target, ast.Attribute) and _repeatable(target.value):
            read = ast.Attribute(value=target.value, attr=target.attr, ctx=ast.Load())
        else:
            return node
        value = ast.BinOp(left=ast.copy_location(read, target), op=node.op, right=node.value)
        return ast.copy_location(ast.Assign(targets=[target], value=ast.copy_location(value, node)), node)


def _repeatable(node: ast.expr) -> bool:
    """An expression whose second evaluation gives what the first did, with no side effect."""
    if isinstance(node, ast.Name | ast.Constant):
        return True
    if isinstance(node, ast.Attribute):
        return _repeatable(node.value)
    if isinstance(node, ast.Subscript):  # user code cannot define __getitem__ (no dunder names)
        return _repeatable(node.value) and _repeatable(node.slice)
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return True
    if isinstance(node, ast.Tuple):
        return all(_repeatable(element) for element in node.elts)
    return False


def _refused(name: str):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenError(f"{name}() is forbidden in custom code")

    refuse.__name__ = name
    return refuse


def make_builtins() -> dict[str, Any]:
    """The `__builtins__` of custom code: an explicit allow-list, never the real builtins module."""
    names = dict(safe_builtins)
    for name in _EXTRA_BUILTINS:
        names[name] = getattr(builtins, name)
    for name in REFUSED_BUILTINS:
        names[name] = _refused(name)
    names.update(
        {
            "__import__": guarded_import,
            "getattr": safe_getattr_builtin,
            "hasattr": safe_hasattr,
            "setattr": guarded_setattr,
            "delattr": guarded_delattr,
        }
    )
    names.pop("_getattr_", None)  # safe_builtins carries its own; ours goes into the globals
    return names


BUILTINS = make_builtins()


def make_globals(print_factory: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A fresh module namespace for one job, with every guard RestrictedPython calls.

    `print_factory` is the `_print_` class (see sandbox.executor.LogCollector).
    """
    namespace: dict[str, Any] = {
        "__builtins__": BUILTINS,
        "__name__": "custom_code",
        "__metaclass__": type,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_inplacevar_": guarded_inplacevar,
        "_apply_": guarded_apply,
        "_print_": print_factory,
    }
    if extra:
        namespace.update(extra)
    return namespace
