"""Where a webhook may go: public addresses only, unless an admin allows more (SSRF).

Any user may create a channel, and the server then calls its URL, so without this a user could
make the server reach its own loopback, the private network or a cloud metadata service. The
host is resolved once here, every address it resolves to is vetted, and the request then goes to
the vetted address itself (the URL's host stays in the Host header and TLS SNI): a second lookup
by the HTTP client could answer differently (DNS rebinding). The check runs when a channel is
created or changed and again before every delivery, since DNS answers change.

Refused unless allowed: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
(169.254/16 with the metadata address 169.254.169.254, fe80::/10), site-local (fec0::/10),
shared/CGNAT (100.64/10),
multicast, reserved, unspecified and documentation ranges, and IPv6 forms carrying one of these
IPv4 addresses (IPv4-mapped, IPv4-compatible, 6to4, NAT64). Decimal, octal and hex IPv4 spellings
(`http://2130706433/`) are the same addresses: the URL parser and the resolver both read them so.

The allow-list (`FLOWHISTORY_ALERT_WEBHOOK_ALLOW`, set by the admin: a JSON list or comma-separated) names hosts (matched
exactly, case-insensitive: every address they resolve to is allowed), addresses or CIDR blocks.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from analytics.core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[tuple[Any, ...]]]

ALLOW_SETTING = "FLOWHISTORY_ALERT_WEBHOOK_ALLOW"
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(InvalidInput):
    """The URL's host is, or resolves to, an address webhooks may not reach."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"url: {reason}", field="url")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: `url` carries the vetted address; `host` goes in Host and SNI."""

    url: httpx.URL
    host: str
    host_header: str
    address: IPAddress


def refusal(address: IPAddress) -> str | None:
    """Why webhooks may not reach `address`, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        kind = _kind(embedded) if embedded is not None else None
        if kind is not None:
            return f"{address} carries {embedded}, {kind}"
    kind = _kind(address)
    return f"{address} is {kind}" if kind is not None else None


def _kind(address: IPAddress) -> str | None:
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (where cloud metadata services answer)"),
        # fec0::/10: deprecated, so Python calls it global, but still routed inside some networks
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "a site-local address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):  # NAT64, ::a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def resolve(
    url: str, allow: Sequence[str] | AllowList, *, getaddrinfo: Resolver = socket.getaddrinfo
) -> Target:
    """Vet `url`'s host and answer where to connect; EgressRefused says why not."""
    allowed = allow if isinstance(allow, AllowList) else AllowList.parse(allow)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise EgressRefused(f"not a usable URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise EgressRefused("a webhook URL is http:// or https:// with a host")
    if parsed.port == 0:  # `or` below would send it to 80 or 443
        raise EgressRefused("port 0 is not a port a receiver listens on")
    host = parsed.raw_host.decode("ascii").strip("[]").lower().rstrip(".")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _addresses(host, port, getaddrinfo)
    if host not in allowed.hosts:
        for address in addresses:
            why = None if allowed.allows(address) else refusal(address)
            if why is not None:
                named = "" if _literal(host) else f"{host} resolves to {address}: "
                raise EgressRefused(
                    f"{named}{why}; webhooks reach only public addresses unless an admin allows"
                    f" the host or address in {ALLOW_SETTING}"
                )
    address = addresses[0]
    return Target(parsed.copy_with(host=str(address)), host, parsed.netloc.decode("ascii"), address)


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addresses(host: str, port: int, getaddrinfo: Resolver) -> list[IPAddress]:
    """Every address `host` resolves to (a literal is itself), in the resolver's order."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"host {host!r} does not resolve") from exc
    found: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 scope id is not part of the address
        address = ipaddress.ip_address(text)
        if address not in found:
            found.append(address)
    if not found:
        raise EgressRefused(f"host {host!r} does not resolve")
    return found
