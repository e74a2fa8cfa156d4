"""Connector sources (one folder each, spec.yaml at its root) and the helper that zips them."""
