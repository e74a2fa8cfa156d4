"""Imports every store module so that their indexes are registered."""
