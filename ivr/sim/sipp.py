"""Real SIP callers with sipp: a small builder for caller scenarios (answer, pause, DTMF, hang up).

DTMF is sent either as RFC 2833 events (the pcaps that ship with sip-tester) or as SIP INFO
(application/dtmf-relay). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .ports import free_udp_block, free_udp_port

PCAP_DIR = Path("/usr/share/sip-tester")

_HDR = """      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{name}" <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70"""


@dataclass
class SippCaller:
    """One scripted call. steps: ("pause", ms) | ("dtmf", "1") RFC 2833 | ("info", "2") SIP INFO |
    ("audio",) start sending speech RTP. end: "hangup" (caller sends BYE) or "wait_bye" (Asterisk hangs up).
    expect: the final response the INVITE must get; anything but 200 (e.g. 503 from admission control)
    ends the call there with the ACK, and any other answer fails the scenario."""

    service: str
    steps: list[tuple] = field(default_factory=list)
    end: str = "hangup"
    caller_number: str = "caller"
    caller_name: str = "Test Caller"
    from_user: str = "caller"
    expect: int = 200

    def xml(self, pcap_dir: Path | None = None) -> str:
        from .rtp_dtmf import DtmfPcapWriter
        pcap_dir = pcap_dir or Path(tempfile.mkdtemp(prefix="sipp-dtmf-"))
        dtmf = DtmfPcapWriter()
        h = lambda method, cseq, to_tag="[peer_tag_param]": _HDR.format(
            name=self.caller_name, user=self.from_user, to_tag=to_tag, cseq=cseq, method=method)
        out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', '<scenario name="ivr-caller">',
               '<send retrans="500"><![CDATA[',
               "      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0",
               h("INVITE", 1, ""),
               f'      P-Asserted-Identity: "{self.caller_name}" <sip:{self.caller_number}@[local_ip]>',
               """      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=sendrecv
]]></send>""",
               '<recv response="100" optional="true"/>', '<recv response="180" optional="true"/>',
               '<recv response="183" optional="true"/>']
        if self.expect != 200:
            out += [f'<recv response="{int(self.expect)}"/>', "<send><![CDATA[",
                    "      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0", "      [last_Via:]",
                    "      [last_From:]", "      [last_To:]", "      [last_Call-ID:]", "      CSeq: 1 ACK",
                    "      Max-Forwards: 70", "      Content-Length: 0", "", "]]></send>", "</scenario>"]
            return "\n".join(out)
        out += ['<recv response="200" rtd="true" rrs="true"/>',
               "<send><![CDATA[", "      ACK [next_url] SIP/2.0", h("ACK", 1),
               "      Content-Length: 0", "", "]]></send>"]
        cseq = 2
        for n, step in enumerate(self.steps):
            kind = step[0]
            if kind == "pause":
                out.append(f'<pause milliseconds="{int(step[1])}"/>')
            elif kind == "dtmf":
                pcap = dtmf.write(step[1], pcap_dir / f"dtmf-{n}.pcap")
                out.append(f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
                if n < len(self.steps) - 1 or self.end == "hangup":
                    # let this digit's packets go out before the next one; not after the last digit of a
                    # call that Asterisk ends (a BYE during a sipp pause aborts the scenario)
                    out.append('<pause milliseconds="250"/>')
            elif kind == "info":
                out += ['<send retrans="500"><![CDATA[', "      INFO [next_url] SIP/2.0", h("INFO", cseq),
                        "      Content-Type: application/dtmf-relay", "      Content-Length: [len]", "",
                        f"      Signal={step[1]}", "      Duration=160", "]]></send>", '<recv response="200"/>']
                cseq += 1
            elif kind == "audio":
                out.append(f'<nop><action><exec play_pcap_audio="{PCAP_DIR / "g711a.pcap"}"/></action></nop>')
            else:
                raise ValueError(f"unknown step {step!r}")
        if self.end == "hangup":
            out += ['<send retrans="500"><![CDATA[', "      BYE [next_url] SIP/2.0", h("BYE", cseq),
                    "      Content-Length: 0", "", "]]></send>", '<recv response="200" crlf="true"/>']
        else:
            out += ['<recv request="BYE"/>', "<send><![CDATA[", "      SIP/2.0 200 OK",
                    "      [last_Via:]", "      [last_From:]", "      [last_To:]", "      [last_Call-ID:]",
                    "      [last_CSeq:]", "      Content-Length: 0", "", "]]></send>"]
        out.append("</scenario>")
        return "\n".join(out)


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class SippProcess:
    """A running sipp (started now, waited for later) so a test can act while the call is up."""

    def __init__(self, call: SippCaller, sip_port: int, timeout: float = 30.0) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError("sipp not installed: run scripts/install.sh")
        self.dir = tempfile.mkdtemp(prefix="sipp-")
        scen = Path(self.dir) / "caller.xml"
        scen.write_text(call.xml(Path(self.dir)))
        self.timeout = timeout
        self.proc = subprocess.Popen(
            ["sipp", f"127.0.0.1:{sip_port}", "-sf", str(scen), "-s", call.service, "-i", "127.0.0.1",
             "-mi", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_block(4)), "-m", "1",
             "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_recv_loops", "1000",
             "-trace_err", "-error_file", str(Path(self.dir) / "errors.log")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.dir)

    def wait(self) -> SippResult:
        try:
            out, err = self.proc.communicate(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        errors = Path(self.dir) / "errors.log"
        if errors.exists():
            err += errors.read_text(errors="replace")[-3000:]
        return SippResult(self.proc.returncode, out[-3000:], err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_call(call: SippCaller, sip_port: int, timeout: float = 30.0) -> SippResult:
    return SippProcess(call, sip_port, timeout).wait()
