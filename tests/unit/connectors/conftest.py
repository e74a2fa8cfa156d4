"""Fixtures of the connector unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from connector_helpers import make_zip, spec_text


@pytest.fixture
def build() -> Callable[..., bytes]:
    """build(spec_document=None, extra={path: content}, drop=[paths]) -> zip bytes."""

    def _build(
        document: dict | None = None, extra: dict[str, bytes | str] | None = None, drop: tuple[str, ...] = ()
    ) -> bytes:
        entries: dict[str, bytes | str] = {
            "spec.yaml": spec_text(document),
            "operations/score.py": "def run(input, ctx):\n    return 1\n",
        }
        entries.update(extra or {})
        return make_zip({k: v for k, v in entries.items() if k not in drop})

    return _build
