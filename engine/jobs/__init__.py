"""The durable job system every queued task kind runs on (flow runs, syncs, event pulls).

    model.py     Job, JobState: the job document
    registry.py  @job_handler(kind) and JobContext (what a handler gets)
    service.py   enqueue_job, get_job, list_jobs, request_stop
    dispatch.py  fair dispatch: Mongo backlog -> at most one Celery message per free worker slot
    execution.py claim, lease renewal, stop, time/memory limits (runs in the queued worker)
    reconcile.py expired leases and lost messages (Redis is only a cache)
    metrics.py   queued_tasks_workers / queued_tasks_workers_required and per-state counts

A job is a MongoDB document first and a Celery message `queued.execute_job(job_id, token)` second.
"""
