"""SIP registrations made from outside a phone with sipp (digest auth):
* ``unregister_all``: REGISTER Contact: *, Expires: 0 (RFC 3261 10.2.2). To Asterisk this is exactly the
  phone unregistering, while the phone itself (pyVoIP, busy ringing) is left alone: pyVoIP's own
  deregister can hang mid-ring.
* ``register_rejecting_phone``: registers an account at a sipp UAS that answers every INVITE with a final
  error (e.g. 503: a phone or SBC out of capacity, i.e. congestion)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ivr.sim.ports import free_udp_port

_REGISTER = """  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{{user}}@[remote_ip]>;tag=[pid]unreg[call_number]
      To: <sip:{{user}}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: {{contact}}
      Expires: {{expires}}{auth}
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
"""
# REGISTER, 401 challenge, REGISTER with digest credentials, 200
_SCENARIO = ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="register">\n'
             + _REGISTER.format(cseq=1, auth="") + '  <recv response="401" auth="true"/>\n'
             + _REGISTER.format(cseq=2, auth="\n      [authentication username={user} password={password}]")
             + '  <recv response="200"/>\n</scenario>\n')


_REJECT_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="reject-every-invite">
  <recv request="INVITE"/>
  <send><![CDATA[
      SIP/2.0 {code} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]rej[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
"""


def unregister_all(user: str, password: str, sip_port: int, timeout: float = 10.0) -> None:
    _register(user, password, sip_port, "*", 0, timeout)


def register_rejecting_phone(user: str, password: str, sip_port: int, code: int = 503,
                             reason: str = "Service Unavailable", calls: int = 10,
                             timeout: float = 60.0) -> subprocess.Popen:
    """Start a sipp UAS rejecting INVITEs with `code` and register it as `user`'s phone; kill() it after."""
    d = Path(tempfile.mkdtemp(prefix="sipp-reject-"))
    scen = d / "reject.xml"
    scen.write_text(_REJECT_UAS.format(code=code, reason=reason))
    port = free_udp_port()
    proc = subprocess.Popen(["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(port), "-m", str(calls),
                             "-nostdin", "-timeout", f"{int(timeout)}s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    try:
        _register(user, password, sip_port, f"<sip:{user}@127.0.0.1:{port}>", 120, 10.0)
    except BaseException:
        proc.kill()
        raise
    return proc


def _register(user: str, password: str, sip_port: int, contact: str, expires: int, timeout: float) -> None:
    d = Path(tempfile.mkdtemp(prefix="sipp-reg-"))
    scen = d / "register.xml"
    scen.write_text(_SCENARIO.format(user=user, password=password, contact=contact, expires=expires))
    r = subprocess.run(["sipp", f"127.0.0.1:{sip_port}", "-sf", str(scen), "-i", "127.0.0.1",
                        "-p", str(free_udp_port()), "-m", "1", "-nostdin", "-timeout", f"{int(timeout)}s",
                        "-timeout_error"], capture_output=True, text=True, timeout=timeout + 10, cwd=d)
    if r.returncode != 0:
        raise AssertionError(f"unregister of {user} failed ({r.returncode}): {r.stderr[-2000:]}")
