"""The integration engine: stores connectors, connections and flows, and executes them."""

__version__ = "0.1.0"
