"""Limits of domain.md §6: defaults, per-workspace and per-customer overrides, rate limiting."""
