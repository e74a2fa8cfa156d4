"""Data-source syncs and event pulls execute as jobs of the durable job system (engine/jobs).

Importing the module registers their job handlers ("data-source-sync", "event-pull") in every
process, as every tasks.* module is imported by producers and workers alike.
"""

from __future__ import annotations

from engine.datasources import handlers  # noqa: F401 - registers the job handlers
