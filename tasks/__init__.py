"""Celery: the app, the `instant` and `queued` queues, and worker start-up."""
