"""The client's address, as the login throttle keys it.

The TCP peer is the client unless it is one of `TRUSTED_PROXIES`: only then is the
forwarding header (`TRUSTED_PROXY_HEADER`: `X-Forwarded-For` or RFC 7239 `Forwarded`)
read, and only the part our proxies wrote. Each proxy appends the address it saw, so
walking the list from the right, past our own proxies, the first other address is the
client; everything left of it is whatever the client chose to send. `connectin api`
runs uvicorn with its own forwarded-header handling off, so this is the one place
that decides (see cli/main.py).

IPv6 clients are keyed by their /64: one host usually holds a whole /64, and keying
by single address would give it 2^64 fresh budgets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cache

from litestar.datastructures import Headers

from core.settings import ApiSettings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"
IPV6_PREFIX = 64


def parse_address(value: str) -> IpAddress | None:
    """An address from a header or socket: `1.2.3.4`, `1.2.3.4:80`, `::1`,
    `[::1]:80`, quoted or not; None for anything else (`unknown`, `_hidden`)."""
    text = value.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(headers: Headers, header: str) -> list[str]:
    """The hops the forwarding header lists, nearest to the client first; every
    instance of the header counts, in order, as a proxy may add one of its own."""
    hops: list[str] = []
    for line in headers.getall(header, []):
        for element in line.split(","):
            if header == "x-forwarded-for":
                hops.append(element)
                continue
            for pair in element.split(";"):
                name, _, value = pair.partition("=")
                if name.strip().lower() == "for":
                    hops.append(value)
    return hops


@cache
def _parsed(networks: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(n) for n in networks)


def _trusted(address: IpAddress, networks: Sequence[str]) -> bool:
    return any(address in network for network in _parsed(tuple(networks)))


def _key(address: IpAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def client_address(peer: str | None, headers: Headers, settings: ApiSettings) -> str:
    address = parse_address(peer) if peer else None
    if address is None:
        return UNKNOWN
    if not _trusted(address, settings.trusted_proxies):
        return _key(address)
    for hop in reversed(_forwarded_for(headers, settings.proxy_header)):
        forwarded = parse_address(hop)
        if forwarded is None:
            # Our proxy could not name the client ("unknown", an obfuscated id): the
            # nearest known hop is the narrowest key we can trust.
            break
        address = forwarded
        if not _trusted(address, settings.trusted_proxies):
            break
    return _key(address)
