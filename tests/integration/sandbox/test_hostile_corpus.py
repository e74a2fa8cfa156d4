"""The hostile corpus through the real service: every program is contained with its own error,
and the runner stays healthy afterwards."""

from __future__ import annotations

import pytest

from tests.integration.sandbox.conftest import SECRET_VALUE

FIBO = "def fibo(n):\n    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\ndef run(input, ctx):\n    return fibo(input)\n"

CORPUS = {
    # RestrictedPython's published escapes
    "generator gi_frame walk (CVE-2023-37271)": (
        "def run(i, c):\n    g = (x for x in [1])\n    return str(g.gi_frame.f_back.f_back.f_globals)\n",
        "forbidden",
        "gi_frame",
    ),
    "generator gi_frame through getattr": (
        "def run(i, c):\n    g = (x for x in [1])\n    f = getattr(g, 'gi_' + 'frame')\n    return str(f)\n",
        "forbidden",
        "gi_frame",
    ),
    "frame f_back through getattr": (
        "def run(i, c):\n    g = (x for x in [1])\n    return str(getattr(g, 'f_back'))\n",
        "forbidden",
        "f_back",
    ),
    "str.format attribute traversal (CVE-2023-41039)": (
        "def run(i, c):\n    return '{0.__class__.__mro__}'.format(1)\n",
        "forbidden",
        "format",
    ),
    "str.format_map traversal": (
        "def run(i, c):\n    return '{f.__globals__}'.format_map({'f': run})\n",
        "forbidden",
        "format_map",
    ),
    "str.format unbound": (
        "def run(i, c):\n    return str.format('{0.__class__}', 1)\n",
        "forbidden",
        "format",
    ),
    "string.Formatter": (
        "import string\ndef run(i, c):\n    return string.Formatter().vformat('{0.__class__}', [1], {})\n",
        "forbidden",
        "string.Formatter",
    ),
    "AttributeError.obj (CVE-2024-47532)": (
        "def run(i, c):\n    try:\n        (1).missing\n    except AttributeError as e:\n        return str(e.obj)\n",
        "forbidden",
        "obj",
    ),
    "try/except* (CVE-2025-22153)": (
        "try:\n    raise ValueError(1)\nexcept* ValueError as eg:\n    x = eg\n",
        "forbidden",
        "TryStar",
    ),
    # attribute walks
    "__subclasses__ walk": ("x = ().__class__.__base__.__subclasses__()\n", "forbidden", "__"),
    "__subclasses__ via getattr": (
        "def run(i, c):\n    return str(getattr(getattr((), '__cla' + 'ss__'), '__subclasses__')())\n",
        "forbidden",
        "__class__",
    ),
    "__globals__ of a function": (
        "def run(i, c):\n    return str(run.__globals__)\n",
        "forbidden",
        "__globals__",
    ),
    "__globals__ via getattr": (
        "def run(i, c):\n    return str(getattr(run, '__glob' + 'als__'))\n",
        "forbidden",
        "__globals__",
    ),
    "__builtins__": ("x = __builtins__\n", "forbidden", "__builtins__"),
    "ctx internals": (
        "def run(i, c):\n    return str(getattr(c.http, '_chan' + 'nel'))\n",
        "forbidden",
        "_channel",
    ),
    "type() class factory": ("def run(i, c):\n    return str(type('X', (), {}))\n", "forbidden", "type"),
    "eval": ("x = eval('1')\n", "forbidden", "Eval"),
    "exec": ("exec('x = 1')\n", "forbidden", "Exec"),
    "__import__": ("os = __import__('os')\n", "forbidden", "__import__"),
    # modules
    **{
        f"import {name}": (f"import {name}\n", "forbidden", f'"{name}"')
        for name in (
            "os",
            "sys",
            "subprocess",
            "socket",
            "ctypes",
            "importlib",
            "gc",
            "inspect",
            "operator",
            "multiprocessing",
            "threading",
            "pty",
            "shutil",
        )
    },
    "from os import environ": ("from os import environ\n", "forbidden", '"os"'),
    # files, environment, network, processes
    "read /etc/passwd": ("def run(i, c):\n    return open('/etc/passwd').read()\n", "forbidden", "open"),
    "read the runner's environment": (
        "import os\ndef run(i, c):\n    return dict(os.environ)\n",
        "forbidden",
        '"os"',
    ),
    "open a socket": (
        "import socket\ndef run(i, c):\n    socket.create_connection(('example.com', 80))\n",
        "forbidden",
        '"socket"',
    ),
    "ctx.http without a connection": (
        "def run(i, c):\n    return c.http.get('http://169.254.169.254/latest/meta-data').text\n",
        "runtime_error",
        "no connection",
    ),
    "fork bomb": ("import os\nwhile True:\n    os.fork()\n", "forbidden", '"os"'),
    "fork bomb via multiprocessing": (
        "import multiprocessing\ndef run(i, c):\n    multiprocessing.Process(target=run).start()\n",
        "forbidden",
        '"multiprocessing"',
    ),
    # resources
    "while True": ("def run(i, c):\n    while True:\n        pass\n", "time_limit", "time limit"),
    "huge string 'x' * 10**10": (
        "def run(i, c):\n    return len('x' * 10**10)\n",
        "memory_limit",
        "memory limit",
    ),
    "huge list [0] * 10**9": (
        "def run(i, c):\n    return len([0] * 10**9)\n",
        "memory_limit",
        "memory limit",
    ),
    "growing list": (
        "def run(i, c):\n    x = []\n    while True:\n        x.append('y' * 1000000)\n",
        "memory_limit",
        "memory limit",
    ),
    "deep recursion": (
        "def f(n):\n    return f(n + 1)\ndef run(i, c):\n    return f(0)\n",
        "recursion_limit",
        "recursion",
    ),
    "huge output": ("def run(i, c):\n    return 'x' * (5 * 1024 * 1024)\n", "output_limit", "output limit"),
    "syntax error": ("def run(i, c)\n    return 1\n", "syntax_error", ""),
}

TIMEOUT_SECONDS = {"while True": 1.0}


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_program_is_contained(runner, name):
    code, expected_type, needle = CORPUS[name]
    body = {"code": code, "input": None, "limits": {"timeout_seconds": TIMEOUT_SECONDS.get(name, 5.0)}}
    response = runner.post(body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "failed", answer
    assert answer["error"]["type"] == expected_type, answer["error"]
    assert needle in answer["error"]["message"], answer["error"]
    assert SECRET_VALUE not in response.text


def test_syntax_error_reports_its_line(runner):
    answer = runner.post({"code": "x = 1\n\ndef run(i, c)\n    return 1\n"}).json()
    assert answer["error"]["type"] == "syntax_error" and answer["error"]["line"] == 3


def test_print_flood_is_truncated_not_fatal(runner):
    answer = runner.post(
        {"code": "def run(i, c):\n    for n in range(100000):\n        print('line', n)\n    return 'done'\n"}
    ).json()
    assert answer["status"] == "completed" and answer["result"] == "done"
    assert "logs truncated" in answer["logs"] and len(answer["logs"]) < 70_000


def test_runner_is_healthy_after_the_corpus(runner):
    # Runs after the corpus (file order): the service answers and still runs normal jobs.
    for name, (code, _, _) in CORPUS.items():
        runner.post({"code": code, "limits": {"timeout_seconds": TIMEOUT_SECONDS.get(name, 5.0)}})
    health = runner.health()
    assert health.status_code == 200
    assert health.json()["mode"] == "custom-code-runner" and health.json()["remaining"] == 4
    result = runner.client.run_job(FIBO, 10)
    assert result.status == "completed" and result.result == 55
