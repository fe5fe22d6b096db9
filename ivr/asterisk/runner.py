"""Render config/asterisk/*.conf for one instance and start/stop Asterisk inside the sid chroot.

Asterisk shares the host network from the chroot, so it binds loopback ports directly. Each instance gets
its own directory /srv/ivr-<instance> inside the chroot (etc, run, log, spool, lib), so tests can run
several Asterisks on different ports without touching each other.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..config import AgentSipConfig, Config, TrunkConfig
from .endpoints import agent_objects

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "config" / "asterisk"


class AsteriskError(RuntimeError):
    """Asterisk could not be prepared or started; the message says what to do."""


def _agent_endpoints(agents: list[AgentSipConfig], contact: str = "", media_address: str = "127.0.0.1",
                     webrtc_media_address: str = "") -> str:
    parts = []
    for a in agents:
        if not a.endpoint.startswith("PJSIP/"):
            continue
        name = a.endpoint.split("/", 1)[1]
        if not a.sip_password:
            raise AsteriskError(f"agent {a.id}: no SIP password (set sip_password or IVR_AGENT_"
                                f"{a.id.upper().replace('-', '_')}_PASSWORD)")
        objs = agent_objects(name, a.sip_password, contact=contact, webrtc=a.webrtc,
                             media_address=webrtc_media_address if a.webrtc else media_address)
        parts.append("\n".join(o.render() for o in objs))
    return "\n".join(parts)


def _trunk_endpoints(trunks: tuple[TrunkConfig, ...]) -> str:
    """One outbound endpoint + aor (+ auth when credentials are configured) per trunk. The caller ID is set
    per call by the originate (From and, with send_pai, P-Asserted-Identity)."""
    parts = []
    for t in trunks:
        name = t.endpoint
        host = f"[{t.host}]" if ":" in t.host and not t.host.startswith("[") else t.host
        ep = (f"[{name}](endpoint-common)\ncontext = from-caller\naors = {name}\nsend_pai = yes\n"
              f"trust_id_outbound = yes\nsend_connected_line = no\n")
        if t.from_domain:
            ep += f"from_domain = {t.from_domain}\n"
        if t.username:
            ep += f"outbound_auth = {name}-auth\n"
        ep += f"\n[{name}]\ntype = aor\ncontact = sip:{host}:{t.port}\nqualify_frequency = 0\n"
        if t.username:
            ep += (f"\n[{name}-auth]\ntype = auth\nauth_type = userpass\nusername = {t.username}\n"
                   f"password = {t.password}\n")
        parts.append(ep)
    return "\n".join(parts)


def render_configs(cfg: Config, astdir: str, template_dir: Path = TEMPLATE_DIR) -> dict[str, str]:
    """Return {filename: text} of every Asterisk config file for this app config."""
    if not cfg.ari.password:
        raise AsteriskError("no ARI password: set ari.password in the config or IVR_ARI_PASSWORD")
    values = {
        "ASTDIR": astdir,
        "ARI_USER": cfg.ari.user,
        "ARI_PASSWORD": cfg.ari.password,
        "BIND_ADDRESS": cfg.asterisk.bind_address,
        "HTTP_PORT": str(cfg.asterisk.http_port),
        "SIP_PORT": str(cfg.asterisk.sip_port),
        "RTP_START": str(cfg.asterisk.rtp_start),
        "RTP_END": str(cfg.asterisk.rtp_end),
        "APP": cfg.ari.app,
        "AGENT_ENDPOINTS": _agent_endpoints(cfg.agent_sip(), cfg.asterisk.agent_contact, cfg.asterisk.bind_address,
                                            cfg.asterisk.webrtc_media_address),
        "TRUNK_ENDPOINTS": _trunk_endpoints(cfg.trunks),
    }
    out = {}
    for f in sorted(template_dir.glob("*.conf")):
        text = f.read_text()
        for k, v in values.items():
            text = text.replace(f"@@{k}@@", v)
        out[f.name] = text
    return out


@dataclass
class AsteriskInstance:
    """One Asterisk process in the chroot. start() waits until ARI answers; stop() is SIGTERM then SIGKILL."""

    cfg: Config
    process: subprocess.Popen | None = None

    @property
    def root(self) -> Path:
        return Path(self.cfg.asterisk.root)

    @property
    def astdir(self) -> str:
        return f"/srv/ivr-{self.cfg.asterisk.instance}"

    @property
    def host_dir(self) -> Path:
        return self.root / self.astdir.lstrip("/")

    @property
    def log_path(self) -> Path:
        return self.host_dir / "asterisk.out"

    def check_installed(self) -> str:
        ready = self.root / ".ready"
        if not ready.exists():
            raise AsteriskError(f"no Asterisk chroot at {self.root}: run scripts/install.sh first (as root)")
        if os.geteuid() != 0:
            raise AsteriskError("starting Asterisk in its chroot needs root")
        return ready.read_text().strip()

    def prepare(self) -> None:
        version = self.check_installed()
        log.info("asterisk %s, instance dir %s", version, self.host_dir)
        for sub in ("etc", "run", "log", "spool/recording", "lib", "cache"):
            (self.host_dir / sub).mkdir(parents=True, exist_ok=True)
        etc = self.host_dir / "etc"
        for old in etc.glob("*.conf"):
            old.unlink()
        for name, text in render_configs(self.cfg, self.astdir).items():
            (etc / name).write_text(text)
            os.chmod(etc / name, 0o600)   # holds ARI and SIP passwords

    def running_pid(self) -> int | None:
        """The pid of an Asterisk of this instance that is already running (its pid file names a live
        asterisk process started with this instance's config), else None."""
        try:
            pid = int((self.host_dir / "run" / "asterisk.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        conf = f"{self.astdir}/etc/asterisk.conf".encode()
        if cmdline and cmdline[0].endswith(b"asterisk") and conf in cmdline:
            return pid
        return None

    def start(self, timeout: float = 30.0) -> None:
        pid = self.running_pid()
        if pid is not None:   # a second one would delete the first one's control socket and share its astdb
            raise AsteriskError(f"an Asterisk of instance {self.cfg.asterisk.instance!r} is already running "
                                f"(pid {pid})")
        self.prepare()
        ctl = self.host_dir / "run" / "asterisk.ctl"
        if ctl.exists():
            ctl.unlink()
        out = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n", "-C", f"{self.astdir}/etc/asterisk.conf"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.cfg.ari_url}/ari/asterisk/info"
        token = base64.b64encode(f"{self.cfg.ari.user}:{self.cfg.ari.password}".encode()).decode()
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                raise AsteriskError(f"asterisk exited with {self.process.returncode}:\n{tail}")
            try:
                req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise AsteriskError(f"ARI did not answer at {url} within {timeout:.0f}s (log: {self.log_path})")

    def stop(self, timeout: float = 5.0) -> None:
        p = self.process
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def cli(self, command: str, timeout: float = 10.0) -> str:
        r = subprocess.run(["chroot", str(self.root), "/usr/sbin/asterisk", "-C",
                            f"{self.astdir}/etc/asterisk.conf", "-rx", command],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.host_dir, ignore_errors=True)
