"""Flow runs and external events execute as jobs of the durable job system (engine/jobs).

Importing the modules registers their job handlers ("flow-run", "external-event") in every
process, as every tasks.* module is imported by producers and workers alike.
"""

from __future__ import annotations

from engine.flows import events, runs  # noqa: F401 - registers the job handlers
