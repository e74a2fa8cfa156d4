"""Validation of an uploaded connector archive (a .zip with `spec.yaml` at its root).

Everything here distrusts the archive: sizes are checked from the headers first (cheap) and
then again while decompressing (the headers may lie), names are checked before anything is
read, and YAML anchors are refused so a small spec cannot expand into a huge document.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.connectors.errors import InvalidConnector
from engine.connectors.spec import ConnectorSpec

SPEC_FILE = "spec.yaml"
MAX_ARCHIVE_BYTES = 10 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 1000
MAX_COMPRESSION_RATIO = 100
MAX_SPEC_BYTES = 1024 * 1024
MAX_PATH_CHARS = 255
# A single small entry compresses well without being a bomb; below this size the per-entry
# ratio is not checked (the total cap still applies).
RATIO_CHECK_MIN_BYTES = 1024 * 1024
_READ_CHUNK_BYTES = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ConnectorPackage:
    """A validated connector: its spec, the archive's files (path -> bytes) and its digest."""

    spec: ConnectorSpec
    files: Mapping[str, bytes] = field(repr=False)
    sha256: str = ""
    archive_bytes: int = 0

    def python_sources(self) -> dict[str, str]:
        """Operation name -> Python source, for the operations run by the custom code runner."""
        return {name: self.files[path].decode("utf-8") for name, path in self.spec.python_files().items()}


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases (a 'billion laughs' spec is a bomb too)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", event.start_mark)
        return super().compose_node(parent, index)


def _invalid(message: str, field: str | None = None) -> InvalidConnector:
    return InvalidConnector(message, field=field)


def _check_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if "\x00" in name or len(name) > MAX_PATH_CHARS:
        raise _invalid("entry name is too long or contains NUL", field=name[:MAX_PATH_CHARS])
    if name.startswith("/") or name.startswith("\\") or _DRIVE.match(name):
        raise _invalid("absolute paths are not allowed", field=name)
    if "\\" in name:
        raise _invalid("backslashes are not allowed in entry names", field=name)
    if ".." in name.split("/"):
        raise _invalid("'..' is not allowed in entry names", field=name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _invalid("symbolic links are not allowed", field=name)
    # Many tools leave the file-type bits at 0 (Python's writestr does): only a set, non-regular
    # type (a device, a FIFO ...) is refused.
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _invalid("only regular files and folders are allowed", field=name)
    if info.flag_bits & 0x1:
        raise _invalid("encrypted entries are not allowed", field=name)
    return posixpath.normpath(name) + ("/" if info.is_dir() else "")


def _read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget_bytes: int, max_ratio: float
) -> bytes:
    """Decompress one entry, counting real bytes: stop at the budget whatever the header says."""
    chunks: list[bytes] = []
    total = 0
    with archive.open(info) as stream:
        while chunk := stream.read(_READ_CHUNK_BYTES):
            total += len(chunk)
            if total > budget_bytes:
                raise _invalid("the archive is larger than allowed once uncompressed", field=info.filename)
            if total >= RATIO_CHECK_MIN_BYTES and total / max(info.compress_size, 1) > max_ratio:
                raise _invalid(
                    f"compression ratio above {max_ratio}: looks like a zip bomb", field=info.filename
                )
            chunks.append(chunk)
    return b"".join(chunks)


def validate_archive(
    data: bytes,
    *,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_entries: int = MAX_ENTRIES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> ConnectorPackage:
    """Check an uploaded connector archive and return its package.

    Raises InvalidConnector(message, field) naming the first problem found; `field` is an entry
    name, or `spec.yaml: <dotted path>` for a problem inside the spec.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _invalid("the connector must be uploaded as bytes")
    data = bytes(data)
    if len(data) > max_archive_bytes:
        raise _invalid(f"the archive is {len(data)} bytes; at most {max_archive_bytes} are allowed")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise _invalid(f"not a zip archive: {error}")
    with archive:
        if len(infos) > max_entries:
            raise _invalid(f"the archive has {len(infos)} entries; at most {max_entries} are allowed")
        names: dict[str, zipfile.ZipInfo] = {}
        declared_bytes = 0
        for info in infos:
            name = _check_name(info)
            if name in names:
                raise _invalid("duplicate entry", field=info.filename)
            names[name] = info
            declared_bytes += info.file_size
        if declared_bytes > max_uncompressed_bytes:
            raise _invalid(
                f"the archive holds {declared_bytes} bytes uncompressed; "
                f"at most {max_uncompressed_bytes} are allowed"
            )
        if declared_bytes >= RATIO_CHECK_MIN_BYTES and declared_bytes / max(len(data), 1) > max_ratio:
            raise _invalid(f"compression ratio above {max_ratio}: looks like a zip bomb")
        if SPEC_FILE not in names:
            raise _invalid(f"{SPEC_FILE} is missing at the root of the archive", field=SPEC_FILE)
        files: dict[str, bytes] = {}
        budget = max_uncompressed_bytes
        try:
            for name, info in names.items():
                if info.is_dir():
                    continue
                content = _read_entry(archive, info, budget, max_ratio)
                budget -= len(content)
                files[name] = content
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,
        ) as e:
            raise _invalid(f"the archive is corrupt: {e}")
    spec = parse_spec(files[SPEC_FILE])
    for op_name, path in spec.python_files().items():
        normalized = posixpath.normpath(path)
        where = f"{SPEC_FILE}: operations.{op_name}.file"
        if path.startswith("/") or ".." in path.split("/") or normalized not in files:
            raise _invalid(f"{path} is not in the archive", field=where)
        try:
            files[normalized].decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(f"{path} is not UTF-8 text", field=where)
    return ConnectorPackage(spec, files, hashlib.sha256(data).hexdigest(), len(data))


def parse_spec(text: bytes | str) -> ConnectorSpec:
    """Parse and validate the text of a spec.yaml; raise InvalidConnector with a `spec.yaml: ...` field."""
    if len(text) > MAX_SPEC_BYTES:
        raise _invalid(f"{SPEC_FILE} is larger than {MAX_SPEC_BYTES} bytes", field=SPEC_FILE)
    try:
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        document = yaml.load(source, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError:
        raise _invalid(f"{SPEC_FILE} is not UTF-8 text", field=SPEC_FILE)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise _invalid(f"{SPEC_FILE} is not valid YAML: {problem}{where}", field=SPEC_FILE)
    try:
        return ConnectorSpec.from_document(document)
    except InvalidConnector as error:
        raise _invalid(error.message, field=f"{SPEC_FILE}: {error.field}" if error.field else SPEC_FILE)
