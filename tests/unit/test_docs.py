"""The documents stay true to the code: every environment variable the code reads is in
docs/operations.md's variable tables and every variable there is read by the code; the README
links the three documents.

The scanner reads the source as text (no import, so it sees every module, finished or not) and
recognises the ways this code base reads the environment:

- `os.environ.get("X")`, `environ.get("X")`, `env.get("X")`, `os.getenv("X")`, `os.environ["X"]`
  (not an assignment to it), `environ.setdefault("X", ...)`;
- the configuration readers: `reader.text/flag/integer/url("X")`, `read("X", ...)` (the runner's
  settings), `_read_secret(reader, "X", ...)`;
- a module constant holding the name: `NAME_VARIABLE = "X"` ... `os.environ.get(NAME_VARIABLE)`;
- the two tables of engine/config.py: `Mode.API: "IS_API"` (MODE_VARIABLES) and the bucket tuples
  `("TMP_S3_BUCKET", Config.tmp_s3_bucket)`;
- f-strings: `f"REDIS_CLUSTER_URI_{index}"` is the family `REDIS_CLUSTER_URI_N`.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED_PACKAGES = ("engine", "tasks", "beat", "sandbox")
OPERATIONS = ROOT / "docs" / "operations.md"
README = ROOT / "README.md"
DOCUMENTS = ("docs/architecture.md", "docs/operations.md", "docs/benchmarks.md")

NAME = r"[A-Z][A-Z0-9_]*(?:\{\w+\})?"
_CALL = re.compile(
    r"\b(?:os\.environ\.get|environ\.get|env\.get|os\.getenv|getenv|environ\.setdefault"
    r"|reader\.(?:text|flag|integer|url)|read|_read_secret)"
    r"\(\s*(?:reader\s*,\s*)?f?([\"'])(" + NAME + r")\1"
)
_SUBSCRIPT = re.compile(r"\benviron\[\s*f?([\"'])(" + NAME + r")\1\s*\](?!\s*=[^=])")
_CONSTANT_CALL = re.compile(r"\b(?:environ\.get|env\.get|getenv)\(\s*([A-Z][A-Z0-9_]*)\s*[,)]")
_CONSTANT_DEFINITION = r"^{name}\s*(?::\s*\w+\s*)?=\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
_MODE_TABLE = re.compile(r"\bMode\.\w+\s*:\s*\"(" + NAME + r")\"")
_BUCKET_TUPLE = re.compile(r"\(\s*\"(" + NAME + r")\"\s*,\s*Config\.\w+\s*\)")

NOT_SETTINGS: dict[str, str] = {
    # engine/dev/s3server.py reads its WSGI request environ, not the process environment.
    "PATH_INFO": "a WSGI request key (engine/dev/s3server.py)",
    "QUERY_STRING": "a WSGI request key (engine/dev/s3server.py)",
    "CONTENT_LENGTH": "a WSGI request key (engine/dev/s3server.py)",
    "REQUEST_METHOD": "a WSGI request key (engine/dev/s3server.py)",
    "MOTO_ALLOW_NONEXISTENT_REGION": "set (setdefault) for moto by the development S3 server, not an operator setting",
    "PATH": "passed through to child processes (make run, the runner's zygote), not an engine setting",
    "PYTHONPATH": "passed through to the runner's zygote, not an engine setting",
}
"""Names the scanner finds that are not settings of the engine, each with its reason. Named in
operations.md's prose where it matters, never in its variable tables."""


def normalise(name: str) -> str:
    """`REDIS_CLUSTER_URI_{index}` -> `REDIS_CLUSTER_URI_N`."""
    return re.sub(r"_?\{\w+\}$", "_N", name)


def variables_read(source: str) -> set[str]:
    """The environment variables one module's source reads (see the module docstring)."""
    found = {match.group(2) for match in _CALL.finditer(source)}
    found |= {match.group(2) for match in _SUBSCRIPT.finditer(source)}
    found |= set(_MODE_TABLE.findall(source)) | set(_BUCKET_TUPLE.findall(source))
    for constant in set(_CONSTANT_CALL.findall(source)):
        definition = re.search(_CONSTANT_DEFINITION.format(name=re.escape(constant)), source, re.MULTILINE)
        if definition:
            found.add(definition.group(1))
    return {normalise(name) for name in found}


def variables_in_code() -> dict[str, list[str]]:
    """Every variable read under SCANNED_PACKAGES, with the files reading it."""
    where: dict[str, list[str]] = {}
    for package in SCANNED_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in variables_read(path.read_text(encoding="utf-8")):
                where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return where


def documented_variables(markdown: str) -> set[str]:
    """The variables named in the first cell of the tables under '## Environment variables'."""
    section = re.search(r"^## Environment variables\n(.*?)(?=^## )", markdown, re.MULTILINE | re.DOTALL)
    assert section, "operations.md has no '## Environment variables' section"
    names = set()
    for line in section.group(1).splitlines():
        cell = re.match(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", line)
        if cell:
            names.add(cell.group(1))
    return names


def mismatches(code: set[str], documented: set[str]) -> tuple[set[str], set[str]]:
    """(read by the code but not documented, documented but not read by the code)."""
    settings = code - set(NOT_SETTINGS)
    return settings - documented, documented - settings


# --- the scanner itself -------------------------------------------------------------------------

SAMPLE = """
import os
EXTRA_VARIABLE = "FROM_A_CONSTANT"
UNUSED_CONSTANT = "NOT_READ_EITHER"
timeout = int(os.environ.get("NEW_TIMEOUT_SECONDS", "5"))
debug = reader.flag("SAMPLE_DEBUG")
home = os.environ["SAMPLE_HOME"]
os.environ["ONLY_WRITTEN"] = "1"
modules = os.environ.get(EXTRA_VARIABLE, "")
nodes = reader.url(f"SAMPLE_NODE_{index}", schemes=("redis",))
print("NOT_A_VARIABLE")
MODES = {Mode.API: "SAMPLE_MODE"}
"""


def test_scanner_finds_each_way_of_reading_a_variable():
    assert variables_read(SAMPLE) == {
        "NEW_TIMEOUT_SECONDS",
        "SAMPLE_DEBUG",
        "SAMPLE_HOME",
        "FROM_A_CONSTANT",
        "SAMPLE_NODE_N",
        "SAMPLE_MODE",
    }


def test_scanner_fails_for_a_variable_missing_from_the_document():
    # Given code that reads one more variable than the document lists
    code = variables_read(SAMPLE)
    documented = code - {"NEW_TIMEOUT_SECONDS"} | {"REMOVED_LONG_AGO"}
    # Then both directions are reported
    missing, stale = mismatches(code, documented)
    assert missing == {"NEW_TIMEOUT_SECONDS"}
    assert stale == {"REMOVED_LONG_AGO"}


def test_documented_variables_reads_only_the_variable_tables():
    markdown = (
        "# Ops\n## Environment variables\n| variable | default |\n|---|---|\n| `ONE` | 1 |\n"
        "text `NOT_IN_A_TABLE`\n### Runner\n| `TWO` | 2 |\n## Metrics\n| `three_metric` | x |\n| `FOUR` | - |\n"
    )
    assert documented_variables(markdown) == {"ONE", "TWO"}


# --- the real documents -------------------------------------------------------------------------


def test_every_variable_read_by_the_code_is_documented_and_vice_versa():
    code = variables_in_code()
    documented = documented_variables(OPERATIONS.read_text(encoding="utf-8"))
    missing, stale = mismatches(set(code), documented)
    assert not missing, "read by the code but not in docs/operations.md: " + ", ".join(
        f"{name} ({', '.join(code[name])})" for name in sorted(missing)
    )
    assert not stale, f"in docs/operations.md but read nowhere in {SCANNED_PACKAGES}: {sorted(stale)}"


def test_the_scanner_sees_the_known_reads_of_the_code():
    # A guard against a scanner that silently finds nothing: these are read in three different ways.
    code = variables_in_code()
    for name in (
        "MONGO_URI",
        "IS_API",
        "TMP_S3_BUCKET",
        "REDIS_CLUSTER_URI_N",
        "SECRET",
        "CUSTOM_CODE_RUNNER_JOB_SPACES",
        "WEB_CONCURRENCY",
    ):
        assert name in code, name


def test_not_settings_are_really_found_in_the_code():
    # Each exclusion must still match something the scanner finds, or it is stale.
    code = variables_in_code()
    assert set(NOT_SETTINGS) <= set(code), set(NOT_SETTINGS) - set(code)


def test_readme_links_the_three_documents():
    readme = README.read_text(encoding="utf-8")
    for document in DOCUMENTS:
        assert f"]({document})" in readme, f"README.md does not link {document}"
        assert (ROOT / document).is_file(), document
