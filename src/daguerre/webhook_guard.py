"""Where a webhook may be sent: never into this service's own network.

A webhook URL is chosen by a customer, and the worker that calls it sits inside the
operator's network, next to Temporal, the database and cloud metadata endpoints. So:

- at submit time the gateway refuses what is wrong on its face (``check_url``): no host,
  a scheme other than http(s), port 0, a literal address that is not public (in any of
  the notations a resolver accepts: ``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
  ``[::ffff:127.0.0.1]``...), or ``localhost``;
- at delivery the worker resolves the host (``resolve_destination``) and refuses it
  unless EVERY address it resolves to is public, then connects to the address it checked
  (see workers/webhooks.py), so a name that resolves to a public address for the check
  and a private one for the connection (DNS rebinding) cannot get through.

Operators let chosen internal destinations through with ``webhook_allow`` (host names or
CIDR blocks). No I/O here but ``getaddrinfo``, and nothing from the workers: the gateway
imports this module.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Resolves (host, port) to addresses; getaddrinfo in a thread unless a test says otherwise.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# IPv4 blocks that are not on the public internet (IANA's special-purpose registry),
# checked explicitly: ``ipaddress``'s flags changed between Python releases.
_BLOCKED_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
]
# IPv6: only global unicast (2000::/3) is public, less these blocks inside it.
_GLOBAL_V6 = ipaddress.IPv6Network("2000::/3")
_BLOCKED_V6 = [
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments (Teredo among them)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: carries an IPv4 address of any kind
        "3fff::/20",  # documentation
    )
]
# IPv6 prefixes that carry an IPv4 address, which decides: IPv4-mapped (::ffff:a.b.c.d)
# and NAT64 (64:ff9b::a.b.c.d).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Host names that mean this machine without asking DNS.
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class DestinationRefused(Exception):
    """The webhook URL may not be called; the message says why (and holds no secret)."""


def embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address stands for."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a public unicast address, in whatever form it came."""
    inner = embedded_v4(address)
    if inner is not None:
        return is_public(inner)
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in net for net in _BLOCKED_V4)
    if address.scope_id:
        return False
    return address in _GLOBAL_V6 and not any(address in net for net in _BLOCKED_V6)


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions (``webhook_allow``): host names, and CIDR blocks or
    single addresses."""

    hosts: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        candidates = [address]
        inner = embedded_v4(address)
        if inner is not None:
            candidates.append(inner)
        return any(
            a in net for a in candidates for net in self.networks if a.version == net.version
        )


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart: what the worker connects to, and what it says it is."""

    scheme: str
    host: str  # as written, lower case, without brackets
    port: int

    @property
    def key(self) -> str:
        """One destination, for backoff and the circuit breaker."""
        return f"{self.scheme}://{self.host}:{self.port}"


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it spells one, in any notation ``getaddrinfo``
    accepts: dotted, bracketed IPv6, and the legacy inet_aton forms (a single integer,
    hex or octal parts, fewer than four parts: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_target(url: str) -> tuple[SplitResult, Target]:
    """``url`` taken apart, or :class:`DestinationRefused` for what is wrong on its face."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise DestinationRefused(f"it is not a valid URL ({err})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationRefused("it must start with http:// or https://")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise DestinationRefused("it has no host name")
    if port == 0:
        raise DestinationRefused("port 0 cannot be called")
    if any(c.isspace() or c in "\\%" for c in host):
        raise DestinationRefused("its host name has characters a host name cannot have")
    default_port = 443 if scheme == "https" else 80
    return parts, Target(scheme=scheme, host=host, port=port or default_port)


def check_url(url: str, allow: AllowList) -> Target:
    """The cheap checks, with no DNS: what the gateway runs at submit time. Raises
    :class:`DestinationRefused`."""
    _, target = parse_target(url)
    if allow.allows_host(target.host):
        return target
    address = literal_address(target.host)
    if address is not None:
        _check_address(address, allow)
    elif target.host in _LOCAL_NAMES or target.host.endswith(".localhost"):
        raise DestinationRefused(f"{target.host} is this machine")
    return target


def _check_address(address: IPAddress, allow: AllowList) -> None:
    if not is_public(address) and not allow.allows_address(address):
        raise DestinationRefused(
            f"{address} is not a public address (loopback, private, link-local, "
            "multicast or reserved); webhooks are only sent to the public internet"
        )


async def getaddrinfo_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the event loop's own getaddrinfo)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_destination(
    url: str, allow: AllowList, resolver: Resolver = getaddrinfo_resolver
) -> tuple[Target, IPAddress]:
    """The target and the one address to connect to: resolved once, every address
    checked (a name with one private address among public ones is refused). Raises
    :class:`DestinationRefused` before any connection is made."""
    target = check_url(url, allow)
    literal = literal_address(target.host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            found = await resolver(target.host, target.port)
        except (OSError, UnicodeError) as err:
            raise DestinationRefused(f"its host name does not resolve ({err})") from None
        addresses = []
        for text in found:
            try:
                addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
            except ValueError:
                raise DestinationRefused(
                    "its host name resolves to an unreadable address"
                ) from None
        if not addresses:
            raise DestinationRefused("its host name resolves to no address")
    if not allow.allows_host(target.host):
        for address in addresses:
            _check_address(address, allow)
    chosen = addresses[0]
    # Connect to the IPv4 address an IPv4-mapped one stands for: it is what was checked.
    if isinstance(chosen, ipaddress.IPv6Address) and chosen.ipv4_mapped is not None:
        chosen = chosen.ipv4_mapped
    return target, chosen
