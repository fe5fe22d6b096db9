"""Harness shared by the call-center benchmarks (`bench/compare.py`, `bench/soak.py`).

One `Bench` owns, in a fresh temp dir: a generated app config (free loopback ports, random ARI password and
admin token, embedded SQLite CRM with sample customers, a bench flow, one skill queue, N agents), one
Asterisk in the project's chroot, the app as a separate process (`python -m ivr run`), and sipp processes:
one UAS answering for every agent endpoint (the agents' AORs get a static contact pointing at it, so nothing
registers and Asterisk reports the endpoints `online`), and one UAC per load run.

The same Asterisk serves both scenarios:
  A  caller From user `benchq` -> endpoint `benchq` -> context `bench-appq`: Answer, Read(1 digit, ~1 s
     prompt), Queue(bench) on app_queue with the same agents as static members (ringinuse=no, rrmemory).
  B  caller From user `caller` -> the project's `from-caller` context -> Stasis -> the app: flow `bench`
     (answer, ~1 s prompt in a one-key menu, queue `bench`), CRM lookup, skill routing, metrics.

Every caller has a unique number (sipp injection file), logged with wall-clock timestamps by the caller sipp
(INVITE sent, 200 OK received, DTMF sent, BYE answered) and by the agent sipp (INVITE received, BYE
received): post-dial delay = INVITE -> 200 OK at the caller; DTMF -> agent = end packet of the digit (start
+ 160 ms, when Asterisk reports it) -> INVITE at the agent (which answers at once).

CPU is read from /proc/<pid>/stat (all threads) of Asterisk, the app and both sipps; RSS from
/proc/<pid>/status. Every process is started in its own session and stopped by pid on exit or Ctrl-C.
"""

from __future__ import annotations

import atexit
import base64
import json
import math
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.asterisk import AsteriskInstance
from ivr.config import load_config
from ivr.sim.ports import free_tcp_port, free_udp_port, free_udp_range
from ivr.sim.rtp_dtmf import DtmfPcapWriter

PROMPT = "auth-thankyou"      # 0.96 s: the "~1 s prompt" of both scenarios (interruptible by the key)
DID = "500"
QUEUE = "bench"
DTMF_MS = 160                 # the digit's end packet leaves this long after its first packet
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------ processes
class Procs:
    """Processes this harness started; stopped by pid (SIGTERM, then SIGKILL) on close, exit or signal."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._closers: list = []
        atexit.register(self.close)

    def spawn(self, args: list[str], log: Path, **kw) -> subprocess.Popen:
        out = open(log, "ab")
        try:
            p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, **kw)
        finally:
            out.close()
        self._procs.append(p)
        return p

    def on_close(self, fn) -> None:
        self._closers.append(fn)

    @staticmethod
    def stop(p: subprocess.Popen | None, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def close(self) -> None:
        for p in reversed(self._procs):
            self.stop(p, 5.0)
        self._procs.clear()
        while self._closers:
            try:
                self._closers.pop()()
            except Exception as e:   # cleanup must go on
                print(f"cleanup: {e}", file=sys.stderr)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP end the run like Ctrl-C does (KeyboardInterrupt), so `finally` blocks clean up."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


# ---------------------------------------------------------------------------------------- /proc
def cpu_seconds(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK      # utime + stime, all threads


def rss_mb(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (all cores)."""
    vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


# ------------------------------------------------------------------------------------------- config
class BenchAsterisk(AsteriskInstance):
    """The project's Asterisk with the bench-only pieces appended after rendering: the app_queue caller
    endpoint and dialplan (scenario A) and a queues.conf with every agent as a static member."""

    extra: dict[str, str]
    verbose: int = 0

    def prepare(self) -> None:
        super().prepare()
        etc = self.host_dir / "etc"
        conf = etc / "asterisk.conf"     # console and messages.log verbosity (3 in the project's template)
        conf.write_text(re.sub(r"(?m)^verbose = \d+$", f"verbose = {self.verbose}", conf.read_text()))
        for name, text in self.extra.items():
            p = etc / name
            p.write_text((p.read_text() if p.exists() else "") + "\n" + text)
            os.chmod(p, 0o600)


def _appq_config(agent_names: list[str], moh: str = "default") -> dict[str, str]:
    members = "\n".join(f"member => PJSIP/{n}" for n in agent_names)
    return {
        "pjsip.conf": (
            "; ---- bench/callcenter.py: scenario A callers (pure dialplan + app_queue)\n"
            "[benchq](endpoint-common)\ncontext = bench-appq\ntrust_id_inbound = yes\n"),
        "extensions.conf": (
            "; ---- bench/callcenter.py: scenario A\n"
            "[bench-appq]\n"
            "exten => _X.,1,Answer()\n"
            f" same => n,Read(KEY,{PROMPT},1,,1,5)\n"
            ' same => n,GotoIf($["${KEY}" != "1"]?bad)\n'
            f" same => n,Queue({QUEUE},,,,120)\n"
            " same => n,Hangup()\n"
            " same => n(bad),Hangup()\n"),
        "queues.conf": (
            "[general]\npersistentmembers = no\nautofill = yes\nshared_lastcall = no\n\n"
            f"[{QUEUE}]\nstrategy = rrmemory\nringinuse = no\ntimeout = 10\nretry = 1\nwrapuptime = 0\n"
            f"joinempty = yes\nleavewhenempty = no\nmusicclass = {moh}\nannounce-frequency = 0\n"
            "periodic-announce-frequency = 0\nannounce-position = no\nannounce-holdtime = no\n"
            "reportholdtime = no\nservicelevel = 20\n" + members + "\n"),
    }


def number_of(serial: int) -> str:
    """Caller number of the serial-th call of this bench (unique per call: the correlation key)."""
    return f"+4420{70000000 + serial}"


def _customers(max_serial: int, every: int) -> dict:
    out = []
    for i, serial in enumerate(range(every, max_serial + 1, every)):
        out.append({"customer_id": f"B{serial:07d}", "account_id": f"ACC-{serial:07d}",
                    "name": f"Customer {serial}", "phones": [number_of(serial)],
                    "tier": "vip" if i % 5 == 0 else "standard", "language": "en"})
    return {"customers": out}


FLOW = f"""# Written by bench/callcenter.py: answer, ~1 s prompt that is also a one-key menu, skill queue.
flow: bench
description: Benchmark line
entry: menu
language: en
nodes:
  menu:
    type: menu
    prompt: sound:{PROMPT}
    options:
      "1": queue
    timeout: 5
    max_attempts: 1
    on_invalid: goodbye
    on_timeout: goodbye
  queue:
    type: queue
    queue: {QUEUE}
    on_timeout: goodbye
    on_no_agents: goodbye
    on_full: goodbye
  goodbye:
    type: hangup
"""


# ------------------------------------------------------------------------------------------- sipp
_SDP = """v=0
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
"""


def caller_xml(from_user: str, pcap: Path, pre_ms: int, talk_ms: int) -> str:
    """INVITE -> 200 (PDD) -> ACK -> pre_ms (the prompt plays) -> DTMF '1' -> talk_ms -> BYE.
    A 503 to the INVITE (the server shedding load, or Asterisk's own overload protection) is a clean end of
    the call for sipp: it is ACKed and logged `S` (shed), so it neither counts as a sipp error nor trips the
    overload guard; the bench counts it as a call that did not complete."""
    h = (
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
        f'From: "[field1]" <sip:{from_user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\n'
        "To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}\n"
        "Call-ID: [call_id]\nCSeq: {cseq}\n"
        f"Contact: <sip:{from_user}@[local_ip]:[local_port];transport=[transport]>\nMax-Forwards: 70\n")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench-caller">
<nop><action><log message="I [timestamp] [field0]"/></action></nop>
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
{h.format(to_tag="", cseq="1 INVITE")}P-Asserted-Identity: "[field1]" <sip:[field0]@[local_ip]>
Content-Type: application/sdp
Content-Length: [len]

{_SDP}]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>
<recv response="503" optional="true" next="shed"><action><log message="S [timestamp] [field0]"/></action></recv>
<recv response="200" rrs="true"><action><log message="A [timestamp] [field0]"/></action></recv>
<send><![CDATA[
ACK [next_url] SIP/2.0
{h.format(to_tag="[peer_tag_param]", cseq="1 ACK")}Content-Length: 0

]]></send>
<pause milliseconds="{pre_ms}"/>
<nop><action><log message="D [timestamp] [field0]"/><exec play_pcap_audio="{pcap}"/></action></nop>
<pause milliseconds="{talk_ms}"/>
<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
{h.format(to_tag="[peer_tag_param]", cseq="2 BYE")}Content-Length: 0

]]></send>
<recv response="200" crlf="true" next="end"><action><log message="E [timestamp] [field0]"/></action></recv>
<label id="shed"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<label id="end"/>
</scenario>
"""


AGENT_XML = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench-agent">
<recv request="INVITE" crlf="true"><action>
  <ereg regexp="sip:[^@;>]+" search_in="hdr" header="From:" check_it="true" assign_to="num"/>
  <log message="R [timestamp] [$num]"/>
</action></recv>
<send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:agent@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{_SDP}]]></send>
<recv request="ACK" crlf="true"/>
<recv request="BYE"><action><log message="B [timestamp] [$num]"/></action></recv>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


def read_log(path: Path) -> dict[str, dict[str, float]]:
    """sipp <log> lines 'K <date>\\t<time>\\t<epoch> <number>' -> {K: {number: epoch}} (first of each)."""
    out: dict[str, dict[str, float]] = {}
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        try:
            out.setdefault(parts[0], {}).setdefault(parts[4].removeprefix("sip:"), float(parts[3]))
        except ValueError:
            continue
    return out


# -------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Call:
    """One caller, from the caller sipp's log (epoch seconds)."""

    start: float               # INVITE sent
    pdd_ms: float | None       # INVITE -> 200 OK; None if never answered
    end: float | None          # the caller's BYE got its 200 OK
    completed: bool            # the agent answered it and the caller's BYE got its 200 OK
    shed: bool                 # refused with a 503 (admission control, or Asterisk's own overload guard)
    shed_ms: float | None = None   # INVITE -> 503


@dataclass
class RunResult:
    scenario: str
    rate: float
    duration: float
    offered: int = 0
    started: int = 0
    answered: int = 0
    completed: int = 0
    agent_answered: int = 0
    agent_byes: int = 0
    pdd_ms: list[float] = field(default_factory=list)
    dtmf_agent_ms: list[float] = field(default_factory=list)
    max_concurrent: int = 0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)      # seconds over the run, per process
    host_busy: float = 0.0                                   # fraction of all cores busy (every process)
    host_cpu: float = 0.0                                    # CPU seconds of the whole machine over the run
    rss_mb: dict[str, tuple[float, float]] = field(default_factory=dict)   # (start, max)
    errors: list[str] = field(default_factory=list)
    leftover_channels: int = 0                               # on Asterisk when the run returned (see run_calls)
    leftover_bridges: int = 0
    sipp_rc: int | None = None
    shed: int = 0                                            # calls refused with a 503 (not completed)
    calls: list[Call] = field(default_factory=list)          # every caller, by start time
    cpu_samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (epoch, CPU s so far:
    #                                                        per process, and "host": the whole machine)
    marks: list[float] = field(default_factory=list)         # epoch each segment of the rate schedule started
    t_end: float = 0.0                                       # epoch the caller sipp exited (last call ended)
    stopped_early: int | None = None                         # calls up when the overload guard stopped sipp

    @property
    def completion(self) -> float:
        return self.completed / self.offered if self.offered else 0.0

    @property
    def failed(self) -> int:
        return self.offered - self.completed

    def ok(self, min_completion: float = 0.995, max_pdd_p99: float = 200.0) -> bool:
        return self.completion >= min_completion and pct(self.pdd_ms, 99) < max_pdd_p99

    @property
    def other_cpu(self) -> float:
        """CPU seconds of everything else on the machine (this harness, other users' jobs, the kernel)."""
        return max(0.0, self.host_cpu - sum(self.cpu.values()))

    def cpu_ms_per_call(self, who: str) -> float:
        return 1000 * self.cpu.get(who, 0.0) / self.completed if self.completed else math.nan

    def line(self) -> str:
        return (f"{self.scenario} rate={self.rate:g}/s {self.duration:g}s: completed {self.completed}/{self.offered}"
                f" ({100 * self.completion:.2f}%) pdd p50/p99={pct(self.pdd_ms, 50):.0f}/{pct(self.pdd_ms, 99):.0f}ms"
                f" dtmf->agent p50/p99={pct(self.dtmf_agent_ms, 50):.0f}/{pct(self.dtmf_agent_ms, 99):.0f}ms"
                f" cpu/call ast={self.cpu_ms_per_call('asterisk'):.1f}ms app={self.cpu_ms_per_call('app'):.1f}ms"
                f" host busy {100 * self.host_busy:.0f}% (others {100 * self.other_cpu / max(self.wall, 1e-9):.0f}% of a core)"
                f" max conc {self.max_concurrent}" + (f" shed(503) {self.shed}" if self.shed else "")
                + (f" [{'; '.join(self.errors[:2])}]" if self.errors else ""))


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    ev = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


# ----------------------------------------------------------------------------------------------- bench
class Bench:
    """The whole stack for one benchmark run. Use as a context manager; everything is cleaned up on exit."""

    def __init__(self, *, agents: int = 400, log_level: str = "WARNING", rtp_ports: int = 6000,
                 customers_every: int = 10, customers_max_serial: int = 20000, keep: bool = False,
                 verbose: bool = True, ast_verbose: int = 0, scrape_interval: float = 5.0,
                 rest_websockets: int | None = None, cprofile: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
        self.cprofile = cprofile         # run the app under cProfile, writing the profile here when it stops
        self.procs = Procs()
        self.keep = keep
        self.verbose = verbose
        self.ast_verbose = ast_verbose
        self.scrape_interval = scrape_interval
        self.serial = 0
        self.app: subprocess.Popen | None = None
        self.uas: subprocess.Popen | None = None
        self.runs = 0
        self.last_metrics: dict[str, float] = {}        # B: the last scrape during a load run
        self.metric_families: set[str] = set()
        rng = random.Random(7)
        self.agent_ids = [f"ba{i:04d}" for i in range(1, agents + 1)]
        self.uas_port = free_udp_port()
        self.uas_media = free_udp_port() & ~1
        rtp = free_udp_range(rtp_ports, lo=20000, hi=60000)
        self.password = secrets.token_urlsafe(12)
        self.token = secrets.token_urlsafe(12)
        self.http_port = free_tcp_port()
        (self.dir / "flows").mkdir()
        (self.dir / "flows" / "bench.yaml").write_text(FLOW)
        (self.dir / "customers.yaml").write_text(yaml.safe_dump(_customers(customers_max_serial, customers_every)))
        self.log_level = log_level
        conf = {
            "asterisk": {"bind_address": "127.0.0.1", "sip_port": free_udp_port(), "http_port": free_tcp_port(),
                         "rtp_start": rtp[0], "rtp_end": rtp[1], "instance": f"bench-{os.getpid()}-{secrets.token_hex(3)}",
                         "agent_contact": f"sip:{{name}}@127.0.0.1:{self.uas_port}"},
            "ari": {"user": "ivr", "password": self.password, "app": "ivr-bench",
                    **({} if rest_websockets is None else {"rest_websockets": rest_websockets})},
            "flows": {"dir": str(self.dir / "flows"), "default": "bench", "routes": {DID: "bench"}, "watch": False},
            "http": {"bind_address": "127.0.0.1", "port": self.http_port, "admin_token": self.token},
            "log": {"level": log_level},
            "storage": {"path": str(self.dir / "ivr.sqlite")},
            "crm": {"backend": "sqlite", "default_region": "GB", "budget_ms": 500,
                    "sqlite": {"path": str(self.dir / "crm.sqlite"), "sample_data": str(self.dir / "customers.yaml")}},
            "acd": {"auto_login": True},
            "agents": [{"id": a, "name": f"Agent {a[2:]}", "endpoint": f"PJSIP/{a}", "languages": ["en"],
                        "sip_password": secrets.token_urlsafe(9),
                        "skills": {"support": rng.randint(1, 5), "billing": rng.randint(1, 5)}}
                       for a in self.agent_ids],
            "queues": [{"name": QUEUE, "required_skills": {"support": 1}, "optional_skills": {"billing": 1},
                        "ring_timeout": 10, "max_misses": 3, "wrap_up": 0, "max_wait": 120,
                        "service_level": {"percent": 80, "seconds": 20}}],
            "routing": {"tiers": {"vip": {"priority_boost": 10}}},
        }
        self.config_path = self.dir / "ivr.yaml"
        self.config_path.write_text(yaml.safe_dump(conf, sort_keys=False))
        os.chmod(self.config_path, 0o600)
        self.cfg = load_config(self.config_path, env={})
        self.ast = BenchAsterisk(self.cfg)
        self.ast.extra = _appq_config(self.agent_ids)
        self.ast.verbose = ast_verbose
        self.pcap = DtmfPcapWriter().write("1", self.dir / "dtmf-1.pcap", duration_ms=DTMF_MS)
        (self.dir / "agent.xml").write_text(AGENT_XML)
        self.procs.on_close(self._cleanup)

    # ------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.procs.close()

    def _cleanup(self) -> None:
        self.ast.remove()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def say(self, msg: str) -> None:
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def start_asterisk(self) -> None:
        self.say(f"starting Asterisk ({self.ast.check_installed()}), {len(self.agent_ids)} agents, work dir {self.dir}")
        self.ast.start()
        self.procs._procs.append(self.ast.process)     # stopped with the rest on exit
        self.start_uas()
        eps = self.ari("GET", "/endpoints")
        online = sum(1 for e in eps if e["resource"] in set(self.agent_ids) and e["state"] == "online")
        if online != len(self.agent_ids):
            raise RuntimeError(f"only {online}/{len(self.agent_ids)} agent endpoints are online")
        members = self.ast.cli(f"queue show {QUEUE}")
        self.say(f"Asterisk pid {self.ast_pid}: {online} agent endpoints online; app_queue: "
                 + (members.splitlines()[0] if members else "?"))

    @property
    def ast_pid(self) -> int | None:
        return self.ast.process.pid if self.ast.process else None

    @property
    def app_pid(self) -> int | None:
        return self.app.pid if self.app and self.app.poll() is None else None

    def start_uas(self) -> None:
        """(Re)start the one sipp UAS that answers for every agent endpoint; a fresh log per run."""
        self.stop_uas()
        self.uas_log = self.dir / f"agent-{self.runs}.log"
        self.uas = self.procs.spawn(
            ["sipp", "-sf", str(self.dir / "agent.xml"), "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-p", str(self.uas_port), "-mp", str(self.uas_media), "-nostdin", "-aa", "-trace_logs",
             "-log_file", str(self.uas_log), "-trace_err", "-error_file", str(self.dir / f"agent-{self.runs}.err"),
             "-max_recv_loops", "5000", "-max_sched_loops", "5000"],
            self.dir / "sipp-agent.out", cwd=self.dir)
        time.sleep(0.3)
        if self.uas.poll() is not None:
            raise RuntimeError(f"agent sipp exited at once: {(self.dir / 'sipp-agent.out').read_text()[-1500:]}")

    def stop_uas(self) -> None:
        # SIGUSR1 would only pause sipp; SIGTERM makes it exit cleanly and flush its log files
        Procs.stop(self.uas, 10.0)

    def start_app(self) -> None:
        self.say(f"starting the app (log level {self.log_level})")
        # IVR_BENCH_APP_PREFIX runs the app under a tool, e.g. "heaptrack -o /tmp/app" (RSS figures are then
        # the wrapper's, not the app's)
        prefix = shlex.split(os.environ.get("IVR_BENCH_APP_PREFIX", ""))
        python = [sys.executable, *(["-m", "cProfile", "-o", self.cprofile] if self.cprofile else [])]
        self.app = self.procs.spawn([*prefix, *python, "-m", "ivr", "run", "--config", str(self.config_path)],
                                    self.dir / "app.log", cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.app.poll() is not None:
                raise RuntimeError(f"the app exited: {(self.dir / 'app.log').read_text()[-3000:]}")
            try:
                h = self.http("GET", "/healthz")
                if h.get("ari_connected"):
                    agents = self.http("GET", "/api/agents")["agents"]
                    ready = sum(1 for a in agents if a["registered"] and a["state"] == "available")
                    if ready == len(self.agent_ids):
                        self.say(f"app pid {self.app.pid} ready: {ready} agents available, RSS {rss_mb(self.app.pid):.0f} MB")
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the app did not get ready in 60 s (log {self.dir / 'app.log'}):\n"
                           + (self.dir / "app.log").read_text()[-3000:])

    def stop_app(self) -> None:
        Procs.stop(self.app, 15.0)

    # --------------------------------------------------------------------------------- HTTP
    def ari(self, method: str, path: str):
        tok = base64.b64encode(f"{self.cfg.ari.user}:{self.password}".encode()).decode()
        req = urllib.request.Request(f"{self.cfg.ari_url}/ari{path}", method=method,
                                     headers={"Authorization": f"Basic {tok}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def http(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        return json.loads(text) if path != "/metrics" else text

    def metrics(self) -> dict[str, float]:
        """/metrics as {'name{labels}': value} (samples only); the names of the metric families the app
        declares (`# TYPE` lines, also those with no sample yet) go to `self.metric_families`."""
        out = {}
        for line in self.http("GET", "/metrics").splitlines():
            if line.startswith("# TYPE "):
                self.metric_families.add(line.split()[2])
            elif line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def wait_idle(self, timeout: float = 30.0) -> tuple[int, int]:
        """Wait until Asterisk has no channel and no bridge; returns what is left (channels, bridges)."""
        deadline = time.monotonic() + timeout
        while True:
            chans, bridges = len(self.ari("GET", "/channels")), len(self.ari("GET", "/bridges"))
            if (chans == 0 and bridges == 0) or time.monotonic() > deadline:
                return chans, bridges
            time.sleep(0.5)

    def hangup_all(self) -> tuple[int, int]:
        """Hang up whatever an overloaded run left on Asterisk, so the next run starts clean.
        Returns (channels hung up, bridges destroyed)."""
        n = nb = 0
        for c in self.ari("GET", "/channels"):
            try:
                self.ari("DELETE", f"/channels/{c['id']}")
                n += 1
            except urllib.error.HTTPError:
                pass
        for br in self.ari("GET", "/bridges"):
            try:
                self.ari("DELETE", f"/bridges/{br['id']}")
                nb += 1
            except urllib.error.HTTPError:
                pass
        return n, nb

    def set_agents(self, action: str) -> None:
        for a in self.agent_ids:
            self.http("POST", f"/api/agents/{a}/state", {"action": action, "reason": "bench"})

    # ----------------------------------------------------------------------------------- load
    def run_calls(self, scenario: str, rate: float, duration: float, *, pre_ms: int = 1500, talk_ms: int = 3000,
                  calls: int | None = None, limit: int | None = None, on_sample=None,
                  sample_every: float = 1.0, schedule: list[tuple[float, float]] | None = None,
                  guard: bool = True, restore: bool = True) -> RunResult:
        """`rate` calls/s for `duration` s (or `calls` calls) of scenario A (app_queue) or B (the app).

        `schedule` [(seconds, rate), ...] runs the segments back to back as one sipp load: sipp starts at the
        first rate and the rate is changed through sipp's control socket at each boundary (`res.marks`: the
        epoch each segment started). `guard` stops the caller early when a run is far beyond capacity (see
        below; off for a storm, which is meant to overload). Returns when the caller sipp has ended and
        Asterisk is idle, or 20 s after that: what is still on Asterisk then is `res.leftover_*`; with
        `restore` it is hung up (and said), without it the caller decides (see bench/storm.py `settle`)."""
        self.runs += 1
        segs = schedule or [(duration, rate)]
        rate = segs[0][1]
        if calls is not None:
            n = calls
        else:
            n = max(1, sum(round(r * sec) for sec, r in segs))
        load_s = n / rate if calls is not None else sum(sec for sec, _ in segs)
        first = self.serial + 1
        self.serial += n
        tag = f"{self.runs:02d}-{scenario}"
        csv = self.dir / f"callers-{tag}.csv"
        csv.write_text("SEQUENTIAL\n" + "".join(f"{number_of(s)};Caller {s}\n" for s in range(first, first + n)))
        scen = self.dir / f"caller-{tag}.xml"
        scen.write_text(caller_xml("benchq" if scenario == "A" else "caller", self.pcap, pre_ms, talk_ms))
        log = self.dir / f"caller-{tag}.log"
        err = self.dir / f"caller-{tag}.err"
        stat = self.dir / f"caller-{tag}.stat.csv"
        # overload guard: far more calls up than the rate allows, or failures piling up -> stop the run early
        # (a run far beyond capacity only degrades Asterisk and the app for the runs after it)
        top = max(r for _, r in segs)
        max_up = max(50, 2.5 * top * ((pre_ms + talk_ms) / 1000 + 0.5))
        max_failed = max(5, 0.02 * n)
        self.start_uas()
        bound = load_s + (pre_ms + talk_ms) / 1000 + 30
        res = RunResult(scenario, rate, load_s, offered=n)
        pids = {"asterisk": self.ast_pid, "app": self.app_pid if scenario == "B" else None,
                "sipp-agent": self.uas.pid}
        rss0 = {k: rss_mb(p) for k, p in pids.items() if k in ("asterisk", "app") and p}
        rss_max = dict(rss0)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        h0 = host_cpu()
        ctrl = free_udp_port()
        t0 = time.time()
        caller = self.procs.spawn(
            ["sipp", f"127.0.0.1:{self.cfg.asterisk.sip_port}", "-sf", str(scen), "-s", DID,
             "-inf", str(csv), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(free_udp_port()),
             "-mp", str(free_udp_port() & ~1), "-r", f"{rate:g}", "-rp", "1000", "-m", str(n),
             "-l", str(limit or max(5000, n)), "-nostdin", "-recv_timeout", "15000",
             "-ci", "127.0.0.1", "-cp", str(ctrl),
             "-timeout", f"{int(bound)}s", "-timeout_error", "-trace_logs", "-log_file", str(log),
             "-trace_err", "-error_file", str(err), "-max_recv_loops", "5000", "-max_sched_loops", "5000",
             "-trace_stat", "-stf", str(stat), "-fd", "1"],
            self.dir / f"sipp-caller-{tag}.out", cwd=self.dir)
        res.marks.append(t0)
        pids["sipp-caller"] = caller.pid
        cpu0["sipp-caller"] = 0.0
        hard = time.monotonic() + bound + 15
        last_scrape = 0.0
        caller_cpu = 0.0
        boundaries = [t0 + sum(sec for sec, _ in segs[:i + 1]) for i in range(len(segs) - 1)]
        while caller.poll() is None:
            if time.monotonic() > hard:
                res.errors.append("caller sipp killed at the time bound")
                caller.kill()
                break
            now = time.time()
            if boundaries and now >= boundaries[0]:
                boundaries.pop(0)
                r = segs[len(res.marks)][1]
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:   # sipp's remote control
                    sock.sendto(f"cset rate {r:g}".encode(), ("127.0.0.1", ctrl))
                res.marks.append(now)
            caller_cpu = cpu_seconds(caller.pid) or caller_cpu
            sample = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items() if p and k != "sipp-caller"}
            sample["sipp-caller"] = caller_cpu
            sample["host"] = (host_cpu()[0] - h0[0]) / CLK
            res.cpu_samples.append((now, sample))
            up, failed = _sipp_stat(stat)
            if guard and (up > max_up or failed > max_failed):
                res.errors.append(f"overload: stopped after {now - t0:.0f} s with {up} calls up "
                                  f"(expected ~{max_up / 2.5:.0f}) and {failed} failed")
                res.stopped_early = up
                Procs.stop(caller, 5.0)
                break
            for k, v in rss_max.items():
                rss_max[k] = max(v, rss_mb(pids[k]))
            if scenario == "B" and self.scrape_interval and time.monotonic() - last_scrape >= self.scrape_interval:
                last_scrape = time.monotonic()     # a Prometheus-like scrape: metrics are part of B's cost
                try:
                    self.last_metrics = self.metrics()
                except (OSError, ValueError) as e:
                    res.errors.append(f"scrape: {e}")
            if on_sample is not None:
                on_sample(self, res)
            wake = boundaries[0] - time.time() if boundaries else sample_every
            time.sleep(max(0.0, min(sample_every, wake)))
        caller.wait()
        res.t_end = time.time()
        res.sipp_rc = caller.returncode
        res.wall = res.t_end - t0
        cpu1 = {k: cpu_seconds(p) for k, p in pids.items() if k != "sipp-caller"}
        h1 = host_cpu()
        res.cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
        res.cpu["sipp-caller"] = caller_cpu
        res.host_busy = (h1[0] - h0[0]) / max(1, h1[1] - h0[1])
        res.host_cpu = (h1[0] - h0[0]) / CLK
        res.rss_mb = {k: (rss0[k], rss_max[k]) for k in rss0}
        chans, bridges = self.wait_idle(20)
        res.leftover_channels, res.leftover_bridges = chans, bridges
        if (chans or bridges) and restore:
            hung, destroyed = self.hangup_all()
            note = (f"Asterisk not idle 20 s after the run: {chans} channels, {bridges} bridges "
                    f"(restored: {hung} channels hung up, {destroyed} bridges destroyed)")
            res.errors.append(note)
            self.say(f"  {scenario} {note}")
        self.stop_uas()
        self._score(res, log, self.uas_log, err)
        return res

    def _score(self, res: RunResult, caller_log: Path, agent_log: Path, err: Path) -> None:
        c, a = read_log(caller_log), read_log(agent_log)
        inv, ans, dtmf, end = (c.get(k, {}) for k in "IADE")
        agent_in, agent_bye = a.get("R", {}), a.get("B", {})
        res.started, res.answered = len(inv), len(ans)
        res.agent_answered = sum(1 for n in inv if n in agent_in)
        res.agent_byes = sum(1 for n in inv if n in agent_bye)
        res.completed = sum(1 for n in end if n in agent_in)
        shed = c.get("S", {})
        res.shed = sum(1 for n in shed if n in inv)
        res.calls = sorted((Call(t, 1000 * (ans[n] - t) if n in ans else None, end.get(n),
                                 n in end and n in agent_in, n in shed,
                                 1000 * (shed[n] - t) if n in shed else None) for n, t in inv.items()),
                           key=lambda x: x.start)
        res.pdd_ms = [1000 * (ans[n] - inv[n]) for n in ans if n in inv]
        res.dtmf_agent_ms = [1000 * (agent_in[n] - dtmf[n]) for n in dtmf if n in agent_in]
        res.max_concurrent = max_overlap([(inv[n], end.get(n, ans.get(n, inv[n]))) for n in inv])
        if res.sipp_rc not in (0, None):
            res.errors.append(f"caller sipp exit {res.sipp_rc}")
        if err.exists():
            # one event per timestamped entry; "Dead call ... (successful)" is a retransmission (a 200 to a
            # retransmitted BYE, a 503 to a retransmitted INVITE) arriving after that call ended well: benign
            events = _SIPP_EVENT.split(err.read_text(errors="replace"))[1:]
            late = sum(1 for e in events if e.startswith("Dead call") and "(successful)" in e[:120])
            bad = [e for e in events if not (e.startswith("Dead call") and "(successful)" in e[:120])]
            if bad:
                res.errors.append(f"{len(bad)} sipp errors, e.g. {_short(bad[-1])}")
            if late:
                res.errors.append(f"{late} late retransmissions for calls that had ended (benign)")


def _sipp_stat(path: Path) -> tuple[int, int]:
    """(calls up now, failed calls so far) from the last line of sipp's -trace_stat file."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            last = f.read().decode(errors="replace").strip().splitlines()[-1].split(";")
        return int(last[13]), int(last[17])
    except (OSError, IndexError, ValueError):
        return 0, 0


_SIPP_EVENT = re.compile(r"\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: ")   # starts an event in sipp's -error_file


def _short(s: str, n: int = 160) -> str:
    s = re.sub(r"\s+", " ", s)
    return s if len(s) <= n else s[:n] + "..."


# ------------------------------------------------------------------------------ app-side measurements
def app_state(b: Bench) -> dict[str, float]:
    """The app's own view: live sessions/bridges and queue gauges from /metrics, agents by state from the
    admin API (a leak shows as sessions, bridges, waiting calls or agents not 'available' once idle)."""
    m = b.metrics()
    agents = b.http("GET", "/api/agents")["agents"]
    states: dict[str, int] = {}
    for a in agents:
        states[a["state"]] = states.get(a["state"], 0) + 1
    return {"sessions": m.get("ivr_active_calls", math.nan), "bridges": m.get("ivr_active_bridges", math.nan),
            "waiting": m.get(f'ivr_queue_calls_waiting{{queue="{QUEUE}"}}', math.nan),
            "agents": states, "unregistered": sum(1 for a in agents if not a["registered"])}


def wait_app_idle(b: Bench, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = app_state(b)
        idle = (st["sessions"] == 0 and st["bridges"] == 0 and st["waiting"] == 0
                and st["agents"].get("available", 0) == len(b.agent_ids))
        if idle or time.monotonic() > deadline:
            return st
        time.sleep(0.5)


def _peak_while_waiting(b: Bench, calls: int, rate: float, what: str, base, measure
                        ) -> tuple[float, dict[str, float], dict[str, float]]:
    """Every agent paused, `calls` callers go through the menu into the queue and wait. Returns the most
    callers waiting at once, `base()` taken before, and the largest of each `measure()` value sampled
    while the number waiting was at its peak so far."""
    b.set_agents("pause")
    time.sleep(1.0)
    before = base()
    peak = dict(before)
    most = 0.0

    def sample(bench: Bench, _res: RunResult) -> None:
        nonlocal most
        try:
            w = bench.metrics().get(f'ivr_queue_calls_waiting{{queue="{QUEUE}"}}', 0.0)
        except (OSError, ValueError):
            return
        if w >= most:
            most = w
            for k, v in measure().items():
                peak[k] = max(peak[k], v)

    hold_ms = int(1000 * (calls / rate + 6))
    b.say(f"{what}: all agents paused, {calls} callers at {rate:g}/s wait {hold_ms / 1000:.0f} s")
    try:
        b.run_calls("B", rate, 0, calls=calls, talk_ms=hold_ms, on_sample=sample, sample_every=0.5)
    finally:
        b.set_agents("unpause")
    return most, before, peak


def waiting_memory(b: Bench, calls: int, rate: float) -> dict[str, float]:
    """App (and Asterisk) RSS growth per caller waiting in queue: RSS at the peak of waiting callers minus
    RSS before."""
    waiting, before, peak = _peak_while_waiting(
        b, calls, rate, "memory per waiting call",
        base=lambda: {"app": sorted(rss_mb(b.app_pid) for _ in range(3))[1], "ast": rss_mb(b.ast_pid)},
        measure=lambda: {"app": rss_mb(b.app_pid), "ast": rss_mb(b.ast_pid)})
    base_app, base_ast = before["app"], before["ast"]
    w = waiting or math.nan
    return {"waiting": waiting, "app_base_mb": base_app, "app_peak_mb": peak["app"],
            "app_kb_per_call": 1024 * (peak["app"] - base_app) / w,
            "ast_kb_per_call": 1024 * (peak["ast"] - base_ast) / w}


# ------------------------------------------------------------------------------------------ profiling
def start_profiler(b: Bench, seconds: float, rate: int = 100) -> subprocess.Popen | None:
    """py-spy (pip install py-spy into .venv) on the app process, non-blocking, raw collapsed stacks, only
    samples of a thread holding the GIL (``--gil``): under uvloop the event loop waits for I/O inside its C
    ``run_forever`` (py-spy shows ``Runner.run``), which without ``--gil`` counted as work. SQLite work in
    worker threads runs without the GIL, so it is under-counted here (it is CPU, but not the loop's)."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None or b.app_pid is None:
        b.say("py-spy not found (.venv/bin/pip install py-spy): no profile")
        return None
    b.profile_path = b.dir / "app-profile.txt"
    b.profiler = b.procs.spawn([spy, "record", "-p", str(b.app_pid), "-r", str(rate), "-d", str(int(seconds)),
                          "-f", "raw", "-o", str(b.profile_path), "--nonblocking", "--gil"], b.dir / "py-spy.out")
    return b.profiler


IDLE_FRAMES = ("EpollSelector.select (", "_worker (thread.py)")
# first match wins, in this order
PROFILE_AREAS = [
    ("ARI REST calls (AriClient._request)", ["AriClient._request"]),
    ("ACD router (ivr/acd)", ["(ivr/acd/"]),
    ("CRM SQLite store (lookup, history, screen-pop history)", ["(ivr/crm/store.py"]),
    ("call records (ivr/storage.py)", ["(ivr/storage.py"]),
    ("metrics scrape", ["(ivr/metrics.py", "prometheus_client", "exposition.py"]),
    ("ARI events websocket (read, parse)", ["EventStream.run", "(ivr/ari/models.py", "(ivr/ari/events.py"]),
    ("flow engine (ivr/flow)", ["(ivr/flow/"]),
    ("asyncio/aiohttp transport (socket reads, protocol callbacks)", ["client_proto.py", "selector_events.py"]),
]


def _frame(f: str) -> str:
    """'func (/work/main/ivr/calls/x.py:12)' -> 'func (ivr/calls/x.py)'; other files by base name."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", f)
    if not m:
        return f
    path = m.group(2)
    i = path.rfind("/ivr/") + 1 if not path.startswith("ivr/") else 0
    return f"{m.group(1)} ({path[i:] if path.startswith('ivr/', i) else path.rsplit('/', 1)[-1]})"


def profile_summary(path: Path, top: int = 25) -> list[str]:
    """Inclusive share of the app's busy samples per function of ours (ivr/...), and the top self frames."""
    incl: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    idle = 0
    areas: dict[str, int] = {}
    if not path.exists():
        return [f"no profile at {path}"]
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if frames[-1].startswith(IDLE_FRAMES):      # waiting, not working: py-spy still samples these
            idle += int(n)
            continue
        total += int(n)
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + int(n)
        area = next((name for name, keys in PROFILE_AREAS if any(k in f for f in frames for k in keys)), "other")
        areas[area] = areas.get(area, 0) + int(n)
        for f in set(frames):
            if "(ivr/" in f and "(ivr/cli.py)" not in f and "(ivr/__main__.py)" not in f:
                incl[f] = incl.get(f, 0) + int(n)
    if not total:
        return ["empty profile"]
    out = ["app profile by area (share of samples holding the GIL):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in sorted(areas.items(), key=lambda kv: -kv[1])]
    out.append(f"app profile: {total} working samples ({idle} more waited in epoll or in an idle worker thread); "
               "inclusive share of functions in ivr/:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]]
    out.append("top self frames (where the CPU is spent):")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:15]]
    return out


def traced_waiting_memory(b: Bench, calls: int, rate: float) -> dict[str, float]:
    """Python heap held per waiting caller, with tracemalloc: RSS barely moves for a few hundred waiting
    calls because the process reuses heap freed at start-up (CRM import, imports), so the app is run *in
    this process* for this phase (the subprocess app must be stopped), warmed up, every agent paused, and
    `calls` callers wait in queue; (traced memory at the peak of waiting callers - before) / callers."""
    import asyncio
    import threading
    import tracemalloc

    from ivr.app import App

    assert b.app_pid is None, "stop the app process first (same ports)"
    holder: dict = {}
    ready = threading.Event()

    async def main() -> None:
        app = App(load_config(b.config_path, env={}))
        holder.update(app=app, loop=asyncio.get_running_loop())
        task = asyncio.create_task(app.run())
        await app.ready.wait()
        ready.set()
        await task

    tracemalloc.start(1)
    th = threading.Thread(target=lambda: asyncio.run(main()), name="traced-app", daemon=True)
    th.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the in-process app did not connect in 60 s")
        wait_app_idle(b, 30)
        b.run_calls("B", 5, 2)      # warm-up
        wait_app_idle(b, 15)

        def traced() -> dict[str, float]:
            return {"traced": tracemalloc.get_traced_memory()[0]}

        waiting, before, peak = _peak_while_waiting(
            b, calls, rate, "traced memory per waiting call (in-process app under tracemalloc)",
            base=traced, measure=traced)
        w = waiting or math.nan
        return {"waiting": waiting, "kb_per_call": (peak["traced"] - before["traced"]) / 1024 / w}
    finally:
        if "loop" in holder:
            holder["loop"].call_soon_threadsafe(holder["app"].stop)
        th.join(30)
        tracemalloc.stop()
