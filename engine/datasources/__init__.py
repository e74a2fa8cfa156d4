"""Data sources: collections of external apps synced for a connection, and event pulls.

model.py     DataSource (definition + progress), kinds, states, interval bounds
service.py   create / get / list / delete / request_sync; enqueue_due and release_stale_claims
             for the orchestrator; ensure_event_pull for the flows
sync.py      run_sync: one resumable sync, page by page (progress saved after each page)
events.py    data-record events: recorded in data_record_events, handed to the flows
handlers.py  the job handlers (kinds data-source-sync and event-pull)
"""
