"""A network namespace joined to the host by a veth pair, created and deleted by the test that uses it.

Browser phones need a non-loopback path to Asterisk: Asterisk never offers a 127.0.0.0/8 ICE candidate. The
test puts the browser in this namespace and binds what it must reach (the app's HTTP, Asterisk's media) to
the host end of the pair, so no other address of the machine is ever used. Names and the /30 are chosen
free at creation; everything is deleted on exit, also when the test fails.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BASE = ipaddress.ip_network("10.250.0.0/16")     # carved into /30s: .1 the host end, .2 the namespace end
OURS = re.compile(r"ivrw-([0-9a-f]+)x[0-9a-f]{4}\b")   # ivrw-<creator's pid in hex>x<random>


@dataclass(frozen=True)
class NetNs:
    name: str                 # ip netns name
    host_if: str              # the host end of the veth pair
    host_address: str         # e.g. 10.250.7.1 (on host_if)
    ns_address: str           # e.g. 10.250.7.2 (inside the namespace)

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


def _used_addresses() -> str:
    r = subprocess.run(["ip", "-4", "-o", "addr"], check=False, capture_output=True, text=True, timeout=10)
    return r.stdout


def _remove_orphans() -> None:
    """Namespaces of ours whose creating process is gone (a killed test run) are deleted: with them go
    their veth pairs."""
    listing = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True, timeout=10)
    for m in OURS.finditer(listing.stdout):
        if not os.path.exists(f"/proc/{int(m.group(1), 16)}"):
            subprocess.run(["ip", "netns", "del", m.group(0)], check=False, capture_output=True, timeout=10)


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_addresses()
    subnets = list(BASE.subnets(new_prefix=30))
    for _ in range(50):
        net = subnets[secrets.randbelow(len(subnets))]
        if f" {net.network_address + 1}/" not in used and f" {net.network_address + 2}/" not in used:
            return net
    raise RuntimeError(f"no free /30 in {BASE}")


@contextmanager
def veth_netns() -> Iterator[NetNs]:
    """A fresh namespace with ``lo`` up and a veth pair host_address/30 <-> ns_address/30; no route beyond
    that /30 inside the namespace. Needs root (the e2e tier runs as root)."""
    if os.geteuid() != 0:
        raise RuntimeError("creating a network namespace needs root")
    _remove_orphans()
    tag = f"{os.getpid():x}x{secrets.token_hex(2)}"          # at most 11 characters: names fit in 15
    name, host_if, ns_if = f"ivrw-{tag}", f"ivrh{tag}", f"ivrn{tag}"
    net = _free_subnet()
    host, peer = str(net.network_address + 1), str(net.network_address + 2)
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        _ip("addr", "add", f"{host}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{peer}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield NetNs(name, host_if, host, peer)
    finally:
        # deleting one end of the pair deletes both
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=10)
