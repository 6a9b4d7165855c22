"""Whether a client's address is in an allowlist of networks: /metrics' METRICS_ALLOWED_NETWORKS and an API key's
allowed_cidrs read addresses one way."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def address_allowed(address: str | None, networks: Iterable[str]) -> bool:
    """True when `address` lies in one of `networks` (CIDRs; host bits ignored). An IPv4 client of a server
    listening on [::] arrives IPv4-mapped (::ffff:10.1.2.3) and is matched as its IPv4 address; an unreadable or
    missing address is in none."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        parsed = parsed.ipv4_mapped
    return any(parsed in ipaddress.ip_network(network, strict=False) for network in networks)
