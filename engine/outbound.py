"""Outbound HTTP to customers' apps (connector operations, OAuth2, syncs, http-request nodes):
one guarded `requests.Session` factory, so an engine process is no way into the network it runs
in (server-side request forgery).

The address is checked on the connected socket (`getpeername()`), not on a DNS answer read
beforehand, so a name that resolves to one address for the check and another for the connection
(DNS rebinding) and redirects to internal addresses are caught as well.

- Always refused: link-local addresses (169.254.0.0/16 and fe80::/10, where cloud metadata
  services answer with the machine's credentials), the unspecified and multicast ranges.
- In production (NODE_ENV=production) also loopback, private (RFC 1918, fc00::/7) and shared
  (100.64.0.0/10) addresses: the engine's own stores and the operator's internal services.
- OUTBOUND_ALLOWED_NETWORKS (comma-separated CIDRs) lets through what the operator trusts, e.g.
  an on-premises app that integrations must reach.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:  # the custom code runner imports this module without the engine's configuration
    from engine.config import Config

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_BLOCKED_NETWORKS = (
    "169.254.0.0/16",
    "fe80::/10",
    "0.0.0.0/8",
    "::/128",
    "224.0.0.0/4",
    "ff00::/8",
    "fd00:ec2::254/128",
)
"""Never a customer's app: link-local (cloud metadata), unspecified, multicast."""
PRODUCTION_BLOCKED_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "100.64.0.0/10",
)
"""Refused in production unless OUTBOUND_ALLOWED_NETWORKS lets them through: the machine itself
and the private networks the engine's stores and the operator's services live on."""


def parse_networks(text: str) -> tuple[tuple[str, ...], list[str]]:
    """The CIDRs of a comma-separated list (OUTBOUND_ALLOWED_NETWORKS, e.g. `10.1.0.0/16,
    192.168.5.7/32`), normalised, and the parts that are not networks."""
    networks, bad = [], []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            bad.append(part)
    return tuple(networks), bad


class OutboundBlocked(OSError):
    """The address an outbound request connected to is not one the engine may call."""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which peer addresses outbound requests may connect to."""

    blocked: tuple[Network, ...]
    allowed: tuple[Network, ...] = ()

    @classmethod
    def for_config(cls, config: Config) -> OutboundPolicy:
        return cls.from_settings(config.is_production, config.outbound_allowed_networks)

    @classmethod
    def from_settings(cls, production: bool, allowed_networks: Iterable[str]) -> OutboundPolicy:
        """The policy of a production (or not) process letting through `allowed_networks` (CIDRs)."""
        names = ALWAYS_BLOCKED_NETWORKS + (PRODUCTION_BLOCKED_NETWORKS if production else ())
        return cls(
            tuple(ipaddress.ip_network(n) for n in names),
            tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
        )

    def check(self, address: str, host: str) -> None:
        """Raise OutboundBlocked when `address` (the peer of a connection to `host`) is refused."""
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.allowed):
            return
        if any(ip in network for network in self.blocked):
            raise OutboundBlocked(
                f"{host} is at {ip}, an address outbound requests may not reach "
                "(internal or link-local; an operator can allow networks with OUTBOUND_ALLOWED_NETWORKS)"
            )


class _Guarded:
    policy: OutboundPolicy
    sock: Any
    host: str

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        try:
            self.policy.check(self.sock.getpeername()[0], self.host)
        except OutboundBlocked:
            self.close()  # type: ignore[attr-defined]
            raise


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: OutboundPolicy):
        self.policy = policy
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        http = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), {"policy": self.policy})
        https = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"policy": self.policy})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


def guarded_session(policy: OutboundPolicy) -> requests.Session:
    """A requests.Session whose connections are checked against `policy`."""
    session = requests.Session()
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def outbound_session(config: Config) -> requests.Session:
    """A requests.Session whose connections are checked against this configuration's policy."""
    return guarded_session(OutboundPolicy.for_config(config))
