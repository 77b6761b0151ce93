"""Network namespaces on a bridge, for multi-host tests: build them, run commands inside, always tear down.

    with Lab() as lab:
        agent = lab.add("agent", "198.18.0.10/24")
        cams = lab.add("cams1", "198.18.1.1/16", "198.18.1.2/16")
        lab.block_multicast(cams)          # a switch port that drops multicast to that namespace
        agent.run(["ip", "addr"])

The bridge lives in a namespace of its own, so nothing is added to the root namespace. Every name carries a
unique tag (the process id and a counter), so parallel runs cannot collide, and `close()` (also on errors and at
interpreter exit) deletes every namespace made; deleting a namespace deletes its veth ends.

Multicast: each member gets a 224.0.0.0/4 route on its interface (unless `multicast_route=False`).
`block_multicast(ns)` turns off multicast flooding on the bridge port of that member, with IGMP snooping off
on the bridge, so the bridge never forwards multicast frames to it (no nftables or tc actions needed: this
kernel has neither); unicast still flows.
"""

from __future__ import annotations

import atexit
import itertools
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

_COUNTER = itertools.count(1)


def ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *args] if netns is None else ["ip", "-n", netns, *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def available() -> bool:
    """True when this process may create network namespaces (root, iproute2, veth and bridge support)."""
    if os.geteuid() != 0:
        return False
    try:
        with Lab() as lab:
            lab.add("check", "198.18.255.1/30")
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return False
    return True


@dataclass
class Namespace:
    name: str
    """The namespace name, for `ip netns exec`."""
    interface: str
    """Its interface on the bridge."""
    port: str
    """The bridge's end of its veth pair (in the bridge namespace)."""
    addresses: list[str] = field(default_factory=list)
    """Its addresses, without prefix length."""

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), capture_output=True, text=True, check=False, timeout=timeout)


class Lab:
    """A bridge and the namespaces attached to it."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 0xFFFF:x}{next(_COUNTER):x}"
        self.hub = f"kn{self.tag}hub"
        self.members: list[Namespace] = []
        self._made: list[str] = []
        self._bridge_up = False

    def __enter__(self) -> Lab:
        atexit.register(self.close)
        try:
            self._netns_add(self.hub)
            ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "0", netns=self.hub)
            ip("link", "set", "br0", "up", netns=self.hub)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _netns_add(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("link", "set", "lo", "up", netns=name)

    def add(self, label: str, *addresses: str, multicast_route: bool = True) -> Namespace:
        """A namespace with one interface on the bridge holding `addresses` (CIDR form)."""
        index = len(self.members)
        name = f"kn{self.tag}{label}"
        inner, outer = f"kn{self.tag}i{index}"[:15], f"kn{self.tag}o{index}"[:15]
        self._netns_add(name)
        ip("link", "add", inner, "netns", name, "type", "veth", "peer", "name", outer, "netns", self.hub)
        ip("link", "set", outer, "master", "br0", netns=self.hub)
        ip("link", "set", outer, "up", netns=self.hub)
        for address in addresses:
            ip("addr", "add", address, "dev", inner, netns=name)
        ip("link", "set", inner, "up", netns=name)
        if multicast_route:
            ip("route", "add", "224.0.0.0/4", "dev", inner, netns=name)
        member = Namespace(name, inner, outer, [a.split("/")[0] for a in addresses])
        self.members.append(member)
        return member

    def block_multicast(self, member: Namespace) -> None:
        """The bridge stops forwarding multicast frames to this member (as a switch port configured so)."""
        subprocess.run(
            ["ip", "netns", "exec", self.hub, "bridge", "link", "set", "dev", member.port, "mcast_flood", "off"],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def close(self) -> None:
        """Delete every namespace this lab made (their veth ends go with them); safe to call twice."""
        while self._made:
            name = self._made.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=30)
        atexit.unregister(self.close)
