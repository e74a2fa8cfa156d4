"""validate_archive: the happy path and every rejection, each naming its first problem."""

from __future__ import annotations

import copy
import io
import stat
import zipfile

import pytest
from connector_helpers import MINIMAL_SPEC, make_zip, spec_text

from engine.connectors.archive import validate_archive
from engine.connectors.errors import InvalidConnector
from examples.connectors.build import build_demo_connector_zip


def rejected(data: bytes, **limits) -> InvalidConnector:
    with pytest.raises(InvalidConnector) as caught:
        validate_archive(data, **limits)
    assert caught.value.status == 400
    return caught.value


def with_change(path: str, value, *, delete: bool = False) -> dict:
    document = copy.deepcopy(MINIMAL_SPEC)
    *parents, last = path.split(".")
    target = document
    for step in parents:
        target = target[step]
    if delete:
        del target[last]
    else:
        target[last] = value
    return document


def test_valid_archive_gives_spec_and_python_sources(build):
    package = validate_archive(build())
    assert package.spec.key == "acme" and package.spec.version == "1.2.3"
    assert package.python_sources() == {"score": "def run(input, ctx):\n    return 1\n"}
    assert len(package.sha256) == 64


def test_demo_connectors_are_valid():
    assert validate_archive(build_demo_connector_zip()).spec.key == "demo"
    assert validate_archive(build_demo_connector_zip("demo-oauth2")).spec.auth.type == "oauth2"


def test_not_a_zip():
    assert "not a zip" in rejected(b"PK\x03\x04 this is not really a zip").message
    assert "not a zip" in rejected(b"hello").message


def test_missing_spec(build):
    assert rejected(build(drop=("spec.yaml",))).field == "spec.yaml"


def test_spec_in_a_subfolder_is_not_at_root():
    error = rejected(make_zip({"acme/spec.yaml": spec_text()}))
    assert "missing at the root" in error.message


def test_bad_yaml(build):
    error = rejected(make_zip({"spec.yaml": "key: [unclosed\n"}))
    assert error.field == "spec.yaml" and "not valid YAML" in error.message and "line" in error.message


def test_yaml_aliases_are_refused():
    text = "a: &x [1, 2]\nb: *x\n"
    assert "aliases" in rejected(make_zip({"spec.yaml": text})).message


def test_spec_must_be_a_mapping():
    assert rejected(make_zip({"spec.yaml": "- just\n- a list\n"})).field == "spec.yaml: (root)"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (with_change("key", None, delete=True), "spec.yaml: key"),
        (with_change("version", "1.2"), "spec.yaml: version"),
        (with_change("auth.type", "magic"), "spec.yaml: auth.type"),
        (with_change("auth.apiKey", None, delete=True), "spec.yaml: auth.apiKey"),
        (
            with_change("operations.list-contacts.path", None, delete=True),
            "spec.yaml: operations.list-contacts.path",
        ),
        (
            with_change("operations.list-contacts.method", "FETCH"),
            "spec.yaml: operations.list-contacts.method",
        ),
        (with_change("operations.me.colour", "blue"), "spec.yaml: operations.me.colour"),
        (
            with_change("operations.list-contacts.path", "/c/{{ input.id | nope }}"),
            "spec.yaml: operations.list-contacts.path",
        ),
        (
            with_change("operations.list-contacts.query", {"limit": "{{ secrets.x }}"}),
            "spec.yaml: operations.list-contacts.query.limit",
        ),
        (with_change("baseUri", "https://{{ input.host }}"), "spec.yaml: baseUri"),
        (with_change("auth.fields", {"type": "nonsense"}), "spec.yaml: auth.fields"),
        (with_change("test", "nope"), "spec.yaml: test"),
        (with_change("data.contacts.list", "nope"), "spec.yaml: data.contacts.list"),
        (
            with_change("data.contacts.events", {"created": "carrier-pigeon"}),
            "spec.yaml: data.contacts.events.created",
        ),
        (with_change("operations.score.method", "GET"), "spec.yaml: operations.score"),
    ],
)
def test_schema_errors_name_the_field(build, document, field):
    assert rejected(build(document)).field == field


def test_missing_referenced_file(build):
    error = rejected(build(drop=("operations/score.py",)))
    assert error.field == "spec.yaml: operations.score.file" and "not in the archive" in error.message


def test_too_many_entries(build):
    data = build(extra={f"f{i}.txt": "x" for i in range(20)})
    assert "entries" in rejected(data, max_entries=10).message


def test_archive_too_large(build):
    assert "bytes" in rejected(build(), max_archive_bytes=100).message


def test_uncompressed_too_large(build):
    data = build(extra={"big.bin": b"\x00" * 200_000})
    assert "uncompressed" in rejected(data, max_uncompressed_bytes=100_000).message


@pytest.mark.parametrize("name", ["../evil.py", "operations/../../evil.py"])
def test_dotdot_paths(build, name):
    assert rejected(build(extra={name: "x"})).field == name


@pytest.mark.parametrize("name", ["/etc/passwd", "C:/windows/evil", "\\evil"])
def test_absolute_paths(build, name):
    assert "absolute" in rejected(build(extra={name: "x"})).message


def test_symlink_entry(build):
    data = make_zip(
        {"spec.yaml": spec_text(), "operations/score.py": "operations/../../../etc/passwd"},
        attrs={"operations/score.py": (stat.S_IFLNK | 0o777) << 16},
    )
    error = rejected(data)
    assert error.field == "operations/score.py" and "symbolic" in error.message


def test_zip_bomb_ratio(build):
    data = build(extra={"bomb.bin": b"\x00" * (8 * 1024 * 1024)})
    assert "zip bomb" in rejected(data).message


def test_headers_that_lie_about_sizes_are_caught(build):
    data = bytearray(
        make_zip(
            {"spec.yaml": spec_text(), "operations/score.py": "x" * 5000}, compression=zipfile.ZIP_STORED
        )
    )
    # Shrink the declared size of score.py in the central directory: reading must notice.
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = archive.getinfo("operations/score.py")
    central = bytes(data).rfind(b"PK\x01\x02", 0, bytes(data).rfind(b"operations/score.py"))
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size field
    assert info.file_size == 5000
    rejected(bytes(data))


def test_duplicate_entries(build):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("spec.yaml", spec_text())
        with pytest.warns(UserWarning):
            archive.writestr("spec.yaml", spec_text())
    assert "duplicate" in rejected(buffer.getvalue()).message


def test_encrypted_entries_are_refused(build):
    data = bytearray(build())
    # Set the "encrypted" general-purpose flag of the first central directory entry.
    central = bytes(data).find(b"PK\x01\x02")
    data[central + 8] |= 0x1
    assert "encrypted" in rejected(bytes(data)).message
