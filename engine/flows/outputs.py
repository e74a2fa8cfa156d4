"""Node outputs: the 20 MB limit per output, and large outputs kept in TMP_S3_BUCKET.

A node run's outputs are stored inline in its Mongo document while their JSON is small; above
INLINE_OUTPUTS_MAX_BYTES the list goes to the tmp bucket and the document keeps a reference
(Mongo documents stop at 16 MB, and big documents slow every read of the run).
"""

from __future__ import annotations

import json
from typing import Any

from engine.flows.definition import Node
from engine.flows.executor import NodeFailed
from engine.services import Services

MAX_NODE_OUTPUT_BYTES = 20 * 1024 * 1024
"""Largest JSON size of one node output (domain.md §6); above it the node fails."""
INLINE_OUTPUTS_MAX_BYTES = 256 * 1024
"""Above this JSON size, a node run's outputs live in TMP_S3_BUCKET, referenced from Mongo."""
BLOB_PREFIX = "flow-runs/"


def encode(value: Any) -> bytes:
    """The compact JSON of a value (what the limits measure)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def check_output(node: Node, output: Any) -> None:
    """Raise NodeFailed when the output is not JSON or larger than MAX_NODE_OUTPUT_BYTES."""
    try:
        size = len(encode(output))
    except (TypeError, ValueError) as error:
        raise NodeFailed(f"node output is not JSON-serialisable: {error}", type="invalid_output")
    if size > MAX_NODE_OUTPUT_BYTES:
        raise NodeFailed(
            f"node output is {size / 1024 / 1024:.1f} MB, above the "
            f"{MAX_NODE_OUTPUT_BYTES // 1024 // 1024} MB limit per output",
            type="output_too_large",
        )


def pack(services: Services, run_id: str, node_key: str, outputs: list[Any]) -> dict[str, Any]:
    """The fields to store for a node run's outputs: inline, or a reference to the tmp bucket."""
    data = encode(outputs)
    if len(data) <= INLINE_OUTPUTS_MAX_BYTES:
        return {"outputs": outputs, "outputCount": len(outputs), "outputBytes": len(data)}
    key = f"{BLOB_PREFIX}{run_id}/{node_key}.json"
    services.blobs.put(services.blobs.buckets.tmp, key, data, content_type="application/json")
    return {
        "outputsRef": {"bucket": services.blobs.buckets.tmp, "key": key},
        "outputCount": len(outputs),
        "outputBytes": len(data),
    }


def unpack(services: Services, document: dict[str, Any]) -> list[Any]:
    """The outputs of a stored node run, fetched from the tmp bucket when referenced."""
    ref = document.get("outputsRef")
    if ref is None:
        return list(document.get("outputs") or [])
    return json.loads(services.blobs.get(ref["bucket"], ref["key"]))
