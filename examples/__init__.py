"""Examples shipped with the engine: connectors for the demo app."""

from examples.connectors.build import build_connector_zip, build_demo_connector_zip

__all__ = ["build_connector_zip", "build_demo_connector_zip"]
