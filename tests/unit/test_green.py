"""Which processes are patched for gevent: the API alone, decided from the environment."""

from __future__ import annotations

import pytest

from engine import config, green


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["run"], {"IS_API": "1"}, True),
        (["run"], {"IS_API": " TRUE ", "IS_ORCHESTRATOR": "0"}, True),
        (["run"], {"IS_API": "1", "IS_INSTANT_TASKS_WORKER": "yes"}, False),  # several modes: children
        (["run"], {"IS_API": "0", "IS_QUEUED_TASKS_WORKER": "1"}, False),
        (["run"], {}, False),
        (["sandbox"], {"IS_API": "1"}, False),
        (["token", "--admin"], {"IS_API": "1"}, False),
        ([], {"IS_API": "1"}, False),
    ],
)
def test_only_a_process_running_the_api_alone_is_patched(argv, environ, expected):
    assert green.is_api_process(argv, environ) is expected


def test_it_reads_yes_the_way_the_configuration_does():
    assert green.TRUE_VALUES == config._TRUE
    assert set(green.OTHER_MODE_VARIABLES) == set(config.MODE_VARIABLES.values()) - {"IS_API"}


def test_a_process_that_is_not_the_api_is_left_alone():
    assert green.patch_if_api_process(["run"], {"IS_API": "0"}) is False
    assert green.is_patched() is False
