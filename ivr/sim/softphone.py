"""Real agent softphones for tests: pyVoIP phones that register with digest auth and answer (or not).

Modes: "answer" (auto-answer, ~1 s after ringing), "ignore" (let it ring: ring-no-answer), "busy" (decline
with 486). While a call is up the phone sends audio and counts the audio it receives, so a test can assert
that media flows both ways.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from pyVoIP.VoIP import CallState, InvalidStateError, PhoneStatus, VoIPPhone

from .ports import free_udp_port, free_udp_range

logging.getLogger("pyVoIP").setLevel(logging.WARNING)


@dataclass
class CallStats:
    caller: str = ""
    caller_name: str = ""
    answered_at: float = 0.0
    ended_at: float = 0.0
    rx_bytes: int = 0
    rx_nonsilent: int = 0
    tx_bytes: int = 0
    digits: list[str] = field(default_factory=list)


class AgentPhone:
    def __init__(self, username: str, password: str, sip_port: int, mode: str = "answer") -> None:
        self.username = username
        self.mode = mode
        self.calls: list[CallStats] = []
        self.rings = 0
        self._active = 0
        self._lock = threading.Lock()
        rtp = free_udp_range(40)
        self.phone = VoIPPhone("127.0.0.1", sip_port, username, password, myIP="127.0.0.1",
                               callCallback=self._on_call, sipPort=free_udp_port(), rtpPortLow=rtp[0],
                               rtpPortHigh=rtp[1])

    def start(self, timeout: float = 10.0) -> AgentPhone:
        self.phone.start()
        deadline = time.monotonic() + timeout
        while self.phone.get_status() != PhoneStatus.REGISTERED:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.username} did not register")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        try:
            self.phone.stop()
        except Exception:   # pyVoIP may raise while deregistering from a stopped Asterisk
            pass

    @property
    def active_calls(self) -> int:
        with self._lock:
            return self._active

    def _on_call(self, call) -> None:
        with self._lock:
            self.rings += 1
        if self.mode == "ignore":
            while call.state == CallState.RINGING:
                time.sleep(0.05)
            return
        if self.mode == "busy":
            try:
                call.deny()
            except InvalidStateError:
                pass
            return
        frm = call.request.headers.get("From", {})
        frm = frm if isinstance(frm, dict) else {}
        stats = CallStats(caller=str(frm.get("number", "")), caller_name=str(frm.get("caller", "")).strip().strip('"'))
        try:
            call.answer()
        except InvalidStateError:
            return   # the caller gave up while we were ringing
        stats.answered_at = time.monotonic()
        with self._lock:
            self.calls.append(stats)
            self._active += 1
        tone = bytes([0x40, 0xC0] * 80)   # 160 bytes of a non-silent square-ish wave
        try:
            while call.state == CallState.ANSWERED:
                call.write_audio(tone)
                stats.tx_bytes += len(tone)
                data = call.read_audio(160, blocking=False)
                stats.rx_bytes += len(data)
                stats.rx_nonsilent += sum(1 for b in data if b not in (0x7F, 0xFF, 0x80))
                d = call.get_dtmf()
                if d:
                    stats.digits.append(d)
                time.sleep(0.02)
        except InvalidStateError:
            pass
        finally:
            stats.ended_at = time.monotonic()
            with self._lock:
                self._active -= 1

    def hangup_all(self) -> None:
        for c in list(self.phone.calls.values()):
            try:
                c.hangup()
            except InvalidStateError:
                pass
