"""Which addresses belong to the site's camera networks, and which addresses to probe by unicast.

A device outside the configured camera networks is never interrogated with the site's credentials: it waits
for a technician's approval. Unicast targets are written as one address ("198.18.3.10"), a network
("198.18.3.0/28", every host address in it) or a range ("198.18.3.10-198.18.3.40"), capped in size so that a
typo cannot make the agent probe a whole /8.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_TARGETS_PER_ENTRY = 4096
"""The largest range one unicast target entry may expand to (a /20 of IPv4)."""
MAX_TARGETS = 16384
"""The largest number of unicast probes in one pass, all entries together."""


class TargetError(ValueError):
    """A unicast target entry that cannot be used; the message says why."""


def parse_target(entry: str) -> tuple[IPAddress, IPAddress]:
    """The first and last address of one target entry (an address, a CIDR network or an a-b range)."""
    text = entry.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            if net.num_addresses <= 2:
                return net[0], net[-1]
            return net[1], net[-2]
        if "-" in text:
            start_text, _, end_text = text.partition("-")
            start = ipaddress.ip_address(start_text.strip())
            end = ipaddress.ip_address(end_text.strip())
            if start.version != end.version:
                raise TargetError(f"{entry!r}: both ends of a range must be of the same IP version")
            if int(end) < int(start):
                raise TargetError(f"{entry!r}: the range ends before it starts")
            return start, end
        address = ipaddress.ip_address(text)
    except ValueError as exc:
        if isinstance(exc, TargetError):
            raise
        raise TargetError(f"{entry!r} is not an address, a network or an address range: {exc}") from None
    return address, address


def target_size(entry: str) -> int:
    start, end = parse_target(entry)
    return int(end) - int(start) + 1


def check_target(entry: str) -> str:
    """The entry, if it parses and is not larger than MAX_TARGETS_PER_ENTRY addresses."""
    size = target_size(entry)
    if size > MAX_TARGETS_PER_ENTRY:
        raise TargetError(f"{entry!r} covers {size} addresses; at most {MAX_TARGETS_PER_ENTRY} per entry")
    return entry.strip()


def expand_targets(entries: Iterable[str], limit: int = MAX_TARGETS) -> list[str]:
    """Every address the entries cover, in order, without repeats; TargetError beyond `limit` addresses."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in entries:
        for address in _addresses(entry):
            text = str(address)
            if text in seen:
                continue
            seen.add(text)
            out.append(text)
            if len(out) > limit:
                raise TargetError(f"the unicast targets cover more than {limit} addresses")
    return out


def _addresses(entry: str) -> Iterator[IPAddress]:
    start, end = parse_target(check_target(entry))
    for value in range(int(start), int(end) + 1):
        yield ipaddress.ip_address(value)


def parse_networks(entries: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]


class CameraNetworks:
    """The site's camera networks: membership tests for addresses and URL hosts."""

    def __init__(self, networks: Sequence[str]) -> None:
        self._networks = parse_networks(networks)

    def __repr__(self) -> str:
        return f"CameraNetworks({[str(n) for n in self._networks]})"

    def contains(self, address: str) -> bool:
        """True when `address` is a literal IP address inside one of the networks (names are never inside)."""
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self._networks)

    def url_inside(self, url: str) -> bool:
        """True when the URL's host is a literal address inside the networks (a host name is not)."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return False
        return host is not None and self.contains(host)
