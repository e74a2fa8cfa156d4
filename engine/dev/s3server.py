"""moto's S3 server, made persistent: writes are mirrored to a folder and replayed at start.

moto keeps objects in memory only; `make run` promises that data survives a restart, so every
successful PUT/DELETE of an object is mirrored to `<data-dir>/<bucket>/<key>` and the folder is
loaded back into moto when the server starts. Development only.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from werkzeug.serving import run_simple


def _object_path(data_dir: Path, path: str) -> tuple[str, str] | None:
    parts = unquote(urlparse(path).path).lstrip("/").split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


class PersistMiddleware:
    """Mirror object writes to disk after moto accepted them."""

    def __init__(self, app, data_dir: Path):
        self.app = app
        self.data_dir = data_dir

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        target = (
            _object_path(self.data_dir, environ.get("PATH_INFO", "")) if method in ("PUT", "DELETE") else None
        )
        if target is None or environ.get("QUERY_STRING"):
            if method == "PUT" and target is None:
                bucket = unquote(environ.get("PATH_INFO", "")).strip("/")
                if bucket and "/" not in bucket:
                    (self.data_dir / bucket).mkdir(parents=True, exist_ok=True)
            return self.app(environ, start_response)
        body = b""
        if method == "PUT":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
            environ["wsgi.input"] = io.BytesIO(body)
        status_holder: list[str] = []

        def capture(status, headers, exc_info=None):
            status_holder.append(status)
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        if status_holder and status_holder[0].startswith("2"):
            bucket, key = target
            path = self.data_dir / bucket / key
            if method == "PUT":
                path.parent.mkdir(parents=True, exist_ok=True)
                # moto holds the decoded object; reading it back avoids decoding aws-chunked bodies here.
                stored = _read_back(bucket, key)
                path.write_bytes(stored if stored is not None else body)
            elif method == "DELETE" and path.exists():
                path.unlink()
        return result


def _backend():
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["global"]


def _read_back(bucket: str, key: str) -> bytes | None:
    try:
        return _backend().get_object(bucket, key).value
    except Exception:  # noqa: BLE001 - gone already
        return None


def _replay(data_dir: Path) -> None:
    """Load the mirrored folder into moto before the server accepts requests."""
    backend = _backend()
    for bucket_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        backend.create_bucket(bucket_dir.name, "us-east-1")
        for file in bucket_dir.rglob("*"):
            if file.is_file():
                backend.put_object(bucket_dir.name, str(file.relative_to(bucket_dir)), file.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description="moto S3 server, optionally persistent")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: Any = DomainDispatcherApplication(create_backend_app)
    if args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        _replay(args.data_dir)
        app = PersistMiddleware(app, args.data_dir)
    run_simple("127.0.0.1", args.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
