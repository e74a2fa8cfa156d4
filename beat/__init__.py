"""The orchestrator: Celery beat with a MongoDB-backed schedule."""
