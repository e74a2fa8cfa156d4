"""Limit names, defaults, overrides and validation (domain.md §6)."""

from __future__ import annotations

import pytest

from engine.errors import ValidationFailed
from engine.jobs.model import Job, JobState, lane_of
from engine.limits.model import DEFAULTS, effective, validate


def test_defaults_are_those_of_the_reference():
    assert DEFAULTS == {
        "parallelFlowRunsPerConnection": 1,
        "flowRunsQueueSizePerConnection": 10_000,
        "parallelFlowRuns": 10,
        "parallelBackgroundJobsPerCustomer": 2,
        "parallelEventPulls": 10,
        "parallelCustomCodeRunsPerCustomer": 2,
        "apiRequestsPerSecond": 100,
        "apiRequestsPerCustomerPerSecond": 10,
        "instantTasksQueueSize": 10_000,
        "queuedTasksQueueSize": 100_000,
    }


def test_customer_overrides_apply_only_to_per_customer_limits():
    values = effective(
        {"parallelFlowRuns": 3, "parallelFlowRunsPerConnection": 2},
        {"parallelFlowRunsPerConnection": 5, "parallelFlowRuns": 99},
    )
    assert values["parallelFlowRunsPerConnection"] == 5
    assert values["parallelFlowRuns"] == 3


@pytest.mark.parametrize(
    "body,field",
    [
        ({"parallelFlowRuns": -1}, "parallelFlowRuns"),
        ({"parallelFlowRuns": True}, "parallelFlowRuns"),
        ({"parallelFlowRuns": "2"}, "parallelFlowRuns"),
        ({"apiRequestsPerSecond": 0}, "apiRequestsPerSecond"),
        ({"unknown": 1}, "unknown"),
        ([1, 2], "body"),
    ],
)
def test_invalid_values_name_the_limit(body, field):
    with pytest.raises(ValidationFailed) as error:
        validate(body, per_customer=False)
    assert error.value.field == field


def test_workspace_limits_cannot_be_set_per_customer():
    with pytest.raises(ValidationFailed) as error:
        validate({"parallelEventPulls": 1}, per_customer=True)
    assert error.value.field == "parallelEventPulls"
    assert validate(
        {"parallelFlowRunsPerConnection": 3, "apiRequestsPerCustomerPerSecond": None}, per_customer=True
    ) == {"parallelFlowRunsPerConnection": 3, "apiRequestsPerCustomerPerSecond": None}


def test_job_document_round_trip():
    job = Job(
        id="job_1",
        kind="flow-run",
        state=JobState.QUEUED,
        workspace_id="ws",
        customer_id="cus",
        connection_id="con",
        payload={"a": 1},
        launched_by="api",
        lane=lane_of("flow-run", "cus", "con"),
        slots=("global", "conn:con"),
        slot_holder="job_1/t/1",
    )
    assert Job.from_document(job.to_document()) == job
    assert job.lane == "conn:con" and lane_of("data-source-sync", "cus", None) == "cus:cus"
