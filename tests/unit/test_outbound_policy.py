"""engine/outbound.py: which addresses outbound requests to customers' apps may reach."""

from __future__ import annotations

import dataclasses

import pytest

from engine.config import load_config
from engine.outbound import OutboundBlocked, OutboundPolicy

BASE = {
    "NODE_ENV": "development",
    "MONGO_URI": "mongodb://localhost:27017/engine",
    "REDIS_URI": "redis://localhost:6379/0",
    "SECRET": "s" * 40,
    "ENCRYPTION_SECRET": "e" * 40,
    "IS_API": "1",
}


def policy(production: bool, allowed: str = "") -> OutboundPolicy:
    config = load_config({**BASE, "OUTBOUND_ALLOWED_NETWORKS": allowed})
    return OutboundPolicy.for_config(
        dataclasses.replace(config, node_env="production" if production else "development")
    )


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:169.254.169.254"])
def test_link_local_and_metadata_addresses_are_always_refused(address):
    for production in (False, True):
        with pytest.raises(OutboundBlocked, match="OUTBOUND_ALLOWED_NETWORKS"):
            policy(production).check(address, "metadata.internal")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.20.0.5", "192.168.1.10", "::1", "fd12::1"])
def test_in_production_the_machine_and_private_networks_are_refused_unless_allowed(address):
    with pytest.raises(OutboundBlocked):
        policy(True).check(address, "internal.example")
    policy(False).check(address, "localhost")  # development and tests talk to local apps
    policy(True, allowed="127.0.0.0/8, 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,::1/128,fc00::/7").check(
        address, "allowed.example"
    )


def test_public_addresses_pass_everywhere():
    for production in (False, True):
        policy(production).check("93.184.216.34", "example.com")
        policy(production).check("2606:2800:220:1:248:1893:25c8:1946", "example.com")


def test_a_bad_network_is_a_start_up_problem_naming_the_variable():
    from engine.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config({**BASE, "OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8, nonsense"})
    assert any(p.startswith("OUTBOUND_ALLOWED_NETWORKS: 'nonsense'") for p in caught.value.problems)


def test_the_runner_reads_the_same_setting_and_names_a_bad_network():
    from sandbox.errors import SettingsError
    from sandbox.settings import RunnerSettings

    settings = RunnerSettings.from_env({"NODE_ENV": "production", "OUTBOUND_ALLOWED_NETWORKS": "10.1.2.3/16"})
    assert settings.production and settings.outbound_allowed_networks == ("10.1.0.0/16",)
    with pytest.raises(SettingsError) as caught:
        RunnerSettings.from_env({"OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8,nope"})
    assert "OUTBOUND_ALLOWED_NETWORKS='nope'" in str(caught.value)
