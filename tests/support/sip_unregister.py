"""Remove every registered contact of a SIP account from outside the phone (REGISTER, Contact: *,
Expires: 0, with digest auth; RFC 3261 10.2.2). To Asterisk this is exactly the phone unregistering,
while the phone itself (pyVoIP, busy ringing) is left alone: pyVoIP's own deregister can hang mid-ring."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ivr.sim.ports import free_udp_port

_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="unregister-all">
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[remote_ip]>;tag=[pid]unreg[call_number]
      To: <sip:{user}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: *
      Expires: 0
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@[remote_ip]>;tag=[pid]unreg[call_number]
      To: <sip:{user}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: *
      Expires: 0
      [authentication username={user} password={password}]
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


def unregister_all(user: str, password: str, sip_port: int, timeout: float = 10.0) -> None:
    d = Path(tempfile.mkdtemp(prefix="sipp-unreg-"))
    scen = d / "unregister.xml"
    scen.write_text(_SCENARIO.format(user=user, password=password))
    r = subprocess.run(["sipp", f"127.0.0.1:{sip_port}", "-sf", str(scen), "-i", "127.0.0.1",
                        "-p", str(free_udp_port()), "-m", "1", "-nostdin", "-timeout", f"{int(timeout)}s",
                        "-timeout_error"], capture_output=True, text=True, timeout=timeout + 10, cwd=d)
    if r.returncode != 0:
        raise AssertionError(f"unregister of {user} failed ({r.returncode}): {r.stderr[-2000:]}")
