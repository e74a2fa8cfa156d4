"""The language layer in-process: compile refusals, guards, module proxies, builtins, settings."""

from __future__ import annotations

import json

import pytest

from sandbox.compiler import CompileFailure, compile_source, make_globals
from sandbox.errors import ErrorType, SettingsError
from sandbox.executor import LogBuffer, execute, make_print_collector
from sandbox.policy import ALLOWED_MODULES, ForbiddenError, guarded_getattr, guarded_import
from sandbox.settings import RunnerSettings


def run_code(code: str, value: object = None) -> tuple[dict, object]:
    header = {"code": code, "max_log_bytes": 10_000, "max_output_bytes": 100_000, "memory_limit_mb": 64}
    meta, result = execute(header, json.dumps(value).encode(), None)
    return meta, (json.loads(result) if result else None)


def error_of(code: str) -> dict:
    meta, _ = run_code(code)
    assert meta["status"] == "failed", meta
    return meta["error"]


@pytest.mark.parametrize(
    "code, needle",
    [
        ("def run(i, c):\n    return (lambda: 1).__globals__", "__globals__"),
        ("x = ().__class__.__bases__[0].__subclasses__()", "__subclasses__"),
        ("x = __builtins__", "__builtins__"),
        ("x = __import__('os')", "__import__"),
        ("def g():\n    yield 1\nf = g().gi_frame", "gi_frame"),
        ("x = eval('1')", "Eval"),
        ("exec('x = 1')", "Exec"),
        ("try:\n    pass\nexcept* ValueError:\n    pass", "TryStar"),
        ("async def f():\n    pass", "AsyncFunctionDef"),
    ],
)
def test_compile_refuses_and_names_the_culprit(code, needle):
    with pytest.raises(CompileFailure) as caught:
        compile_source(code)
    assert caught.value.type is ErrorType.FORBIDDEN
    assert needle in caught.value.message
    assert caught.value.line is not None


def test_syntax_error_has_line_number():
    with pytest.raises(CompileFailure) as caught:
        compile_source("x = 1\ny = (\n")
    assert caught.value.type is ErrorType.SYNTAX_ERROR
    assert caught.value.line == 2


@pytest.mark.parametrize(
    "name",
    [
        "os",
        "sys",
        "subprocess",
        "socket",
        "ctypes",
        "importlib",
        "gc",
        "inspect",
        "operator",
        "builtins",
        "multiprocessing",
        "threading",
        "pathlib",
        "io",
        "pickle",
        "marshal",
        "types",
        "signal",
        "os.path",
    ],
)
def test_forbidden_modules_are_named(name):
    error = error_of(f"import {name}")
    assert error["type"] == "forbidden"
    assert f'"{name}"' in error["message"]


@pytest.mark.parametrize(
    "expression, needle",
    [
        ("'{0.__class__}'.format(1)", "format"),
        ("str.format('{0.__class__}', 1)", "format"),
        ("'{x.__globals__}'.format_map({'x': len})", "format_map"),
        ("getattr(len, '__self__')", "__self__"),
        ("getattr(getattr((), '__cl' + 'ass__'), 'mro')", "__class__"),
        ("getattr((i for i in []), 'gi_frame')", "gi_frame"),
        ("getattr((i for i in []), 'gi_code')", "gi_code"),
        ("open('/etc/passwd').read()", "open"),
        ("type('X', (), {})", "type"),
        ("vars()", "vars"),
        ("dir()", "dir"),
        ("globals()", "globals"),
        ("locals()", "locals"),
        ("compile('1', 'x', 'eval')", "compile"),
        ("input()", "input"),
    ],
)
def test_runtime_refusals_are_forbidden_errors(expression, needle):
    error = error_of(f"def run(i, c):\n    return {expression}\n")
    assert error["type"] == "forbidden", error
    assert needle in error["message"]


def test_string_formatter_is_not_offered():
    error = error_of("import string\nf = string.Formatter()")
    assert error["type"] == "forbidden" and "string.Formatter" in error["message"]


def test_attribute_error_obj_is_refused():
    code = "def run(i, c):\n    try:\n        (1).nope\n    except AttributeError as e:\n        return repr(e.obj)\n"
    assert error_of(code)["type"] == "forbidden"


def test_module_proxies_expose_no_imports_of_their_own():
    json_proxy = guarded_import("json")
    with pytest.raises(ForbiddenError):
        json_proxy.decoder  # noqa: B018
    with pytest.raises(ForbiddenError):
        guarded_getattr(json_proxy, "_proxy_members")
    for proxy in ALLOWED_MODULES.values():
        for member in proxy._proxy_members.values():
            assert type(member).__name__ != "module"


def test_modules_are_read_only():
    assert error_of("import math\nmath.pi = 3")["type"] in ("forbidden", "runtime_error")


def test_allowed_modules_work():
    code = """import json, math, re, datetime, decimal, itertools, collections, hashlib, base64, uuid, random
from datetime import timedelta
def run(input, ctx):
    c = collections.Counter(input)
    return {
        'j': json.loads(json.dumps({'a': 1})), 'sqrt': math.sqrt(16), 're': re.findall(r'\\d', 'a1b2'),
        'd': str(decimal.Decimal('1.10') + decimal.Decimal('2.20')), 'p': list(itertools.islice(itertools.count(), 3)),
        'c': c['a'], 'h': hashlib.sha256(b'x').hexdigest()[:8], 'b': base64.b64encode(b'hi').decode(),
        'u': len(str(uuid.uuid4())), 'r': 0 <= random.random() < 1, 't': timedelta(hours=1).total_seconds(),
        'f': f'{math.pi:.2f}', 'y': datetime.date(2024, 1, 2).isoformat(),
    }
"""
    meta, result = run_code(code, ["a", "b", "a"])
    assert meta["status"] == "completed", meta
    assert result["sqrt"] == 4.0 and result["c"] == 2 and result["d"] == "3.30" and result["f"] == "3.14"


def test_normal_python_features_work():
    code = """
def run(input, ctx):
    total = 0
    for a, b in input:
        total += a * b
    d = {}
    d['x'] = [n for n in range(5) if n % 2]
    d["x"] += [9]
    s = sorted(zip([3, 1, 2], 'abc'))
    print('total', total)
    ctx.log.info('hello')
    try:
        1 / 0
    except ZeroDivisionError as e:
        d['err'] = str(e)
    return {'total': total, 'd': d, 's': s, 'conn': ctx.connection.get('region')}
"""
    header = {
        "code": code,
        "max_log_bytes": 1000,
        "max_output_bytes": 10000,
        "memory_limit_mb": 64,
        "connection": {"region": "eu"},
    }
    meta, result = execute(header, b"[[1, 2], [3, 4]]", None)
    assert meta["status"] == "completed", meta
    assert json.loads(result) == {
        "total": 14,
        "d": {"x": [1, 3, 9], "err": "division by zero"},
        "s": [[1, "b"], [2, "c"], [3, "a"]],
        "conn": "eu",
    }
    assert "total 14" in meta["logs"] and "[info] hello" in meta["logs"]


def test_result_variable_and_runtime_error_line():
    meta, result = run_code("result = 6 * 7")
    assert meta["status"] == "completed" and result == 42
    error = error_of("x = 1\n\ndef run(i, c):\n    return {}['missing']\n")
    assert error["type"] == "runtime_error" and error["line"] == 4 and "KeyError" in error["message"]


def test_results_must_be_json():
    assert error_of("def run(i, c):\n    return {1, 2}")["type"] == "invalid_result"
    assert error_of("x = 1")["type"] == "invalid_result"


def test_output_limit():
    header = {
        "code": "def run(i, c):\n    return 'x' * 2000",
        "max_log_bytes": 100,
        "max_output_bytes": 1000,
        "memory_limit_mb": 64,
    }
    meta, result = execute(header, b"null", None)
    assert meta["error"]["type"] == "output_limit" and result == b""


def test_logs_are_capped():
    logs = LogBuffer(10)
    collector = make_print_collector(logs)()
    collector._call_print("a" * 50)
    assert logs.truncated and logs.text().startswith("a" * 10)


def test_recursion_limit():
    assert (
        error_of("def f(n):\n    return f(n + 1)\ndef run(i, c):\n    return f(0)")["type"]
        == "recursion_limit"
    )


def test_namespace_has_every_guard():
    namespace = make_globals(make_print_collector(LogBuffer(10)))
    for guard in (
        "_getattr_",
        "_getitem_",
        "_getiter_",
        "_iter_unpack_sequence_",
        "_unpack_sequence_",
        "_write_",
        "_inplacevar_",
        "_print_",
        "_apply_",
    ):
        assert guard in namespace
    builtins = namespace["__builtins__"]
    assert isinstance(builtins, dict) and "open" in builtins and builtins["__import__"] is guarded_import


def test_settings_defaults_and_errors():
    settings = RunnerSettings.from_env({})
    assert settings.port == 5000 and settings.default_memory_limit_mb == 512
    assert settings.default_timeout_seconds == 30 and settings.max_output_bytes == 20 * 1024 * 1024
    with pytest.raises(SettingsError) as caught:
        RunnerSettings.from_env(
            {
                "PORT": "x",
                "CUSTOM_CODE_RUNNER_JOB_SPACES": "0",
                "CUSTOM_CODE_MEMORY_LIMIT": "12",
                "CUSTOM_CODE_TIMEOUT_SECONDS": "-1",
            }
        )
    names = "\n".join(caught.value.problems)
    for name in (
        "PORT",
        "CUSTOM_CODE_RUNNER_JOB_SPACES",
        "CUSTOM_CODE_MEMORY_LIMIT",
        "CUSTOM_CODE_TIMEOUT_SECONDS",
    ):
        assert name in names
    assert len(caught.value.problems) == 4


def test_confinement_degrades_when_not_root(monkeypatch):
    from sandbox import zygote

    monkeypatch.setattr(zygote.os, "geteuid", lambda: 1000)
    confinement = zygote.confinement_for(True)
    assert confinement.uid is None and confinement.gid is None and confinement.isolate_network


def test_seccomp_filter_is_built_for_known_machines():
    from sandbox import seccomp

    assert len(seccomp.build_filter("x86_64")) % 8 == 0
    assert len(seccomp.build_filter("aarch64")) % 8 == 0
    assert seccomp.build_filter("sparc") is None


def test_augmented_assignment_to_items_counts_as_people_write_it():
    code = """
def run(input, ctx):
    counts = {}
    for word in input:
        counts[word] = counts.get(word, 0)
        counts[word] += 1
    grid = [[0, 0], [0, 0]]
    grid[1][0] -= 5
    pair = {(1, 2): 'a'}
    pair[1, 2] *= 3
    return {'counts': counts, 'grid': grid, 'pair': pair[1, 2]}
"""
    meta, result = run_code(code, ["a", "b", "a"])
    assert meta["status"] == "completed", meta
    assert result == {"counts": {"a": 2, "b": 1}, "grid": [[0, 0], [-5, 0]], "pair": "aaa"}


def test_augmented_assignment_whose_target_has_side_effects_stays_refused():
    # d[f()] += 1 would call f twice once rewritten: it keeps RestrictedPython's refusal
    error = error_of("def f():\n    return 'k'\nd = {'k': 1}\nd[f()] += 1\n")
    assert error["type"] == "forbidden" and error["line"] == 4


def test_augmented_item_assignment_still_goes_through_the_guards():
    # The rewritten read and write are guarded like any other: no private attribute by this way
    error = error_of("class A:\n    pass\na = A()\na.__class__ += 1\n")
    assert error["type"] == "forbidden"
