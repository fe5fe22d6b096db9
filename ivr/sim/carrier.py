"""A stand-in carrier for tests: a sipp UAS on a loopback port that receives the INVITEs of an outbound
trunk and answers them (then waits for the BYE), or refuses them (486 Busy Here, 503 Service Unavailable).

Every SIP message it sees is logged (sipp ``-trace_msg``), so a test can read the INVITE it got: the
Request-URI, To, From and P-Asserted-Identity (``CarrierUas.invites()``).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .ports import free_udp_block

_REPLY = """      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>"""

REASONS = {486: "Busy Here", 503: "Service Unavailable", 480: "Temporarily Unavailable", 404: "Not Found",
           603: "Decline"}


@dataclass
class CarrierScenario:
    """answer: 180, then 200 with SDP (PCMU), then wait for the BYE, or, with ``hangup_after_ms``, send the
    BYE itself after that long (the called party hangs up). Any other code: that final response."""

    answer: int = 200
    hangup_after_ms: int | None = None
    auth: tuple[str, str] | None = None      # (username, password): challenge the INVITE with a 401 first
    #: send back every RTP packet received (sipp ``-rtp_echo``): the called party "speaks", so a test can
    #: see audio flow both ways
    echo: bool = False

    def _challenge(self) -> list[str]:
        """401 with a digest challenge; the INVITE that comes back must carry valid credentials, else 403."""
        if self.auth is None:
            return []
        user, password = self.auth
        return ["<send><![CDATA[", "      SIP/2.0 401 Unauthorized", _REPLY,
                '      WWW-Authenticate: Digest realm="carrier.example", nonce="4a3b2c1d5e6f", algorithm=MD5',
                "      Content-Length: 0", "", "]]></send>", '<recv request="ACK"/>',
                '<recv request="INVITE" crlf="true"><action>'
                f'<verifyauth assign_to="authvalid" username="{user}" password="{password}"/></action></recv>',
                '<nop hide="true" test="authvalid" next="authorized"/>',
                "<send><![CDATA[", "      SIP/2.0 403 Forbidden", _REPLY, "      Content-Length: 0", "",
                "]]></send>", '<recv request="ACK"/>', '<nop><action><exec int_cmd="stop_now"/></action></nop>',
                '<label id="authorized"/>']

    def xml(self) -> str:
        # to send its own BYE it needs the caller's From (with its tag) as To (sipp refuses unused variables)
        keep_from = ('<action><ereg regexp=".*" search_in="hdr" header="From:" check_it="true" '
                     'assign_to="remote_from"/></action>' if self.hangup_after_ms is not None else "")
        out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="carrier-uas">',
               f'<recv request="INVITE" crlf="true" rrs="true">{keep_from}</recv>', *self._challenge(),
               "<send><![CDATA[", "      SIP/2.0 100 Trying", _REPLY, "      Content-Length: 0", "", "]]></send>"]
        if self.answer != 200:
            out += ["<send><![CDATA[", f"      SIP/2.0 {self.answer} {REASONS.get(self.answer, 'Refused')}",
                    _REPLY, "      Content-Length: 0", "", "]]></send>", '<recv request="ACK"/>', "</scenario>"]
            return "\n".join(out)
        out += ["<send><![CDATA[", "      SIP/2.0 180 Ringing", _REPLY, "      Content-Length: 0", "", "]]></send>",
                '<pause milliseconds="500"/>',
                '<send retrans="500"><![CDATA[', "      SIP/2.0 200 OK", _REPLY,
                """      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
]]></send>""",
                '<recv request="ACK" crlf="true"/>']
        if self.hangup_after_ms is not None:
            out += [f'<pause milliseconds="{int(self.hangup_after_ms)}"/>',
                    '<send retrans="500"><![CDATA[', "      BYE [next_url] SIP/2.0",
                    "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
                    "      From: <sip:carrier@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]",
                    "      To: [$remote_from]", "      [last_Call-ID:]", "      CSeq: 1 BYE",
                    "      Max-Forwards: 70", "      Content-Length: 0", "", "]]></send>",
                    '<recv response="200" crlf="true"/>', "</scenario>"]
            return "\n".join(out)
        out += ['<recv request="BYE"/>',
                "<send><![CDATA[", "      SIP/2.0 200 OK", "      [last_Via:]", "      [last_From:]",
                "      [last_To:]", "      [last_Call-ID:]", "      [last_CSeq:]", "      Content-Length: 0", "",
                "]]></send>", "</scenario>"]
        return "\n".join(out)


@dataclass(frozen=True)
class Invite:
    request_uri: str
    headers: dict[str, str]

    @property
    def dialled(self) -> str:
        """The user part of the Request-URI."""
        m = re.match(r"sip:([^@;>]+)@", self.request_uri)
        return m.group(1) if m else ""

    def user_of(self, header: str) -> str:
        m = re.search(r"sips?:([^@;>]+)@", self.headers.get(header.lower(), ""))
        return m.group(1) if m else ""


class CarrierUas:
    """One sipp UAS on 127.0.0.1:<port> for ``calls`` calls, one after the other (``-m``)."""

    def __init__(self, port: int, scenario: CarrierScenario, timeout: float = 60.0, calls: int = 1) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError("sipp not installed: run scripts/install.sh")
        self.dir = Path(tempfile.mkdtemp(prefix="carrier-"))
        scen = self.dir / "carrier.xml"
        scen.write_text(scenario.xml())
        self.messages = self.dir / "messages.log"
        self.timeout = timeout
        _wait_port(port, free=True)          # a previous carrier of the same port has let it go
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port),
             "-mp", str(free_udp_block(4)), "-m", str(calls), "-nostdin", "-timeout", f"{int(timeout)}s",
             "-timeout_error", "-trace_msg", "-message_file", str(self.messages), "-trace_err",
             "-error_file", str(self.dir / "errors.log"), *(["-rtp_echo"] if scenario.echo else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.dir)
        try:
            _wait_port(port, free=False)     # listening before any INVITE is sent to it
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}: {self.proc.stderr.read() if self.proc.stderr else ''}"[-2000:]) from None

    def invites(self) -> list[Invite]:
        """The INVITEs received so far."""
        try:
            text = self.messages.read_text(errors="replace")
        except OSError:
            return []
        out = []
        for block in re.split(r"\n(?=-{5,}|\s*$)", text):
            lines = [ln.strip() for ln in block.splitlines()]
            start = next((i for i, ln in enumerate(lines) if ln.startswith("INVITE ")), None)
            if start is None:
                continue
            headers: dict[str, str] = {}
            for ln in lines[start + 1:]:
                if not ln:
                    break
                name, sep, value = ln.partition(":")
                if sep:
                    headers.setdefault(name.strip().lower(), value.strip())
            out.append(Invite(lines[start].split()[1], headers))
        return out

    def wait(self) -> tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        errors = self.dir / "errors.log"
        if errors.exists():
            err += errors.read_text(errors="replace")[-3000:]
        return self.proc.returncode, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _wait_port(port: int, free: bool, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                is_free = True
            except OSError:
                is_free = False
        if is_free == free:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"udp port {port} is {'still in use' if free else 'not listened on by sipp'}")
        time.sleep(0.05)
