"""Examples shipped with the engine: connectors for the demo app (see examples/connectors/build.py)."""
