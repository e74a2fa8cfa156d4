"""Identifiers: short, unique, sortable by creation time, with a prefix naming the kind."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId


def new_id(prefix: str) -> str:
    """A new id such as `run_65f1c0...` (an ObjectId: time-ordered, unique across processes)."""
    return f"{prefix}_{ObjectId()}"


def first_id_at(prefix: str, when: datetime) -> str:
    """The smallest id of this prefix created at `when` (whole seconds): ids below it are older."""
    return f"{prefix}_{ObjectId.from_datetime(when)}"
