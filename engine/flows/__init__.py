"""Flows: definitions (a trigger and a graph of nodes), their validation, and their execution.

definition.py  the model of a flow and its validation on save
conditions.py  filters (the `filter` node and filters on links)
executor.py    the deterministic graph walk with fan-out
nodes.py       the real node executors (run-action, http-request, run-python, ...)
actions.py     the run-action node over engine.domain.actions.execute_action
outputs.py     node outputs: size limit, large outputs in TMP_S3_BUCKET
service.py     flows and flow instances (create, read, update, enable, schedules)
runs.py        flow runs: jobs of kind "flow-run", their handler, node runs, the API views
events.py      external events: webhooks, app events, data-record events (kind "external-event")
"""
