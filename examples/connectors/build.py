"""Zip a connector folder into an uploadable archive (spec.yaml at the root of the zip).

python -m examples.connectors.build demo -o demo.zip
python -m examples.connectors.build demo-oauth2 -o demo-oauth2.zip
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

CONNECTORS_DIR = Path(__file__).resolve().parent
# A fixed timestamp makes the archive byte-for-byte reproducible (same sha256 for the same source).
_FIXED_DATE_TIME = (2024, 1, 1, 0, 0, 0)
_SKIPPED = ("__pycache__", ".pyc", ".DS_Store")


def build_connector_zip(folder: str | Path) -> bytes:
    """The zip of a connector folder: regular files only, sorted, paths relative to the folder."""
    root = Path(folder)
    if not (root / "spec.yaml").is_file():
        raise FileNotFoundError(f"{root}/spec.yaml")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink() or any(s in str(path) for s in _SKIPPED):
                continue
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def build_demo_connector_zip(variant: str = "demo") -> bytes:
    """The archive of the demo app's connector: `demo` (API key) or `demo-oauth2`."""
    return build_connector_zip(CONNECTORS_DIR / variant)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.connectors.build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("connector", help="a folder under examples/connectors, or a path")
    parser.add_argument("-o", "--output", help="write here (default: stdout)")
    args = parser.parse_args(argv)
    folder = Path(args.connector)
    data = build_connector_zip(folder if folder.is_dir() else CONNECTORS_DIR / args.connector)
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)


if __name__ == "__main__":
    main()
