"""Free loopback ports for test instances (other processes on these machines hold some ports)."""

from __future__ import annotations

import random
import socket


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_udp_range(size: int = 200, lo: int = 30000, hi: int = 60000) -> tuple[int, int]:
    """An even-aligned block of UDP ports whose ends and a sample inside are free."""
    for _ in range(50):
        start = random.randrange(lo, hi - size) & ~1
        probe = [start, start + size - 1] + random.sample(range(start, start + size), 10)
        if all(_udp_free(p) for p in probe):
            return start, start + size - 1
    raise RuntimeError("no free UDP port range found")


def free_udp_block(size: int = 4, lo: int = 21000, hi: int = 30000) -> int:
    """First port of an even-aligned block of `size` free UDP ports, below the kernel's ephemeral range
    (so no client socket takes them meanwhile) and above the default Asterisk RTP range (20000-20999),
    e.g. sipp's media ports: audio, RTCP, video, RTCP."""
    for _ in range(200):
        start = random.randrange(lo, hi - size) & ~1
        if all(_udp_free(p) for p in range(start, start + size)):
            return start
    raise RuntimeError("no free UDP port block found")
