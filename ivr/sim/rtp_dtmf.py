"""RFC 2833/4733 DTMF pcaps for sipp with RTP sequence numbers and timestamps that keep increasing across
the digits of one call. (The pcaps that ship with sip-tester all share one SSRC with fixed sequence numbers:
replaying '9' then '4' makes the second look like an old packet, and Asterisk drops it.)"""

from __future__ import annotations

import struct
from pathlib import Path

TEMPLATE = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
EVENT_CODES = {**{str(i): i for i in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


class DtmfPcapWriter:
    """Writes one pcap per digit; sequence numbers and timestamps continue from the previous digit."""

    def __init__(self, ssrc: int = 0x2A2A2A2A) -> None:
        raw = TEMPLATE.read_bytes()
        self._global_header = raw[:24]
        _, _, incl, _ = struct.unpack("<IIII", raw[24:40])
        self._frame_header = raw[40:40 + incl - 16]   # ethernet + IPv4 + UDP (+ 12 bytes RTP) template
        self._seq = 1000
        self._ts = 8000
        self._ssrc = ssrc

    def write(self, digit: str, path: Path, duration_ms: int = 160) -> Path:
        code = EVENT_CODES[digit.upper()]
        out = bytearray(self._global_header)
        steps = max(3, duration_ms // 20)
        packets = []
        for i in range(steps):
            packets.append((i == 0, False, 160 * (i + 1)))
        packets += [(False, True, 160 * steps)] * 3      # the end packet, sent three times
        for n, (marker, end, dur) in enumerate(packets):
            rtp = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 101, self._seq & 0xFFFF,
                              self._ts & 0xFFFFFFFF, self._ssrc)
            payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, dur)
            frame = bytearray(self._frame_header[:14 + 20 + 8]) + rtp + payload
            ip_len = len(frame) - 14
            frame[16:18] = struct.pack("!H", ip_len)
            frame[14 + 10:14 + 12] = b"\x00\x00"
            frame[14 + 10:14 + 12] = struct.pack("!H", _ip_checksum(bytes(frame[14:34])))
            frame[14 + 20 + 4:14 + 20 + 6] = struct.pack("!H", ip_len - 20)
            frame[14 + 20 + 6:14 + 20 + 8] = b"\x00\x00"    # no UDP checksum (allowed on IPv4)
            t_us = n * 20_000
            out += struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame
            self._seq += 1
        self._ts += 160 * steps + 1600
        path.write_bytes(bytes(out))
        return path


def _ip_checksum(header: bytes) -> int:
    s = sum(struct.unpack("!10H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
