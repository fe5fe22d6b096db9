"""The app as a separate OS process (`python -m ivr run -c <file>`), so tests can SIGKILL it for real."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ivr.config import Config

_PATH_KEYS = {("flows", "dir"), ("storage", "path"), ("log", "file")}


def write_config(cfg: Config, directory: Path) -> Path:
    """cfg as a YAML file usable by `ivr run -c` (relative paths made absolute against cfg.base_dir)."""
    base = Path(cfg.base_dir).resolve()

    def absolute(p: Any) -> Any:
        return str(p if not p or Path(str(p)).is_absolute() else base / str(p))

    d = dataclasses.asdict(cfg)
    d.pop("base_dir", None)
    for section, key in _PATH_KEYS:
        if d.get(section, {}).get(key):
            d[section][key] = absolute(d[section][key])
    crm = d.get("crm") or {}
    sq = crm.get("sqlite")
    if isinstance(sq, dict):
        for k in ("path", "sample_data"):
            if sq.get(k):
                sq[k] = absolute(sq[k])
    d["agents"], d["queues"] = list(d["agents"]), list(d["queues"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ivr.yaml"
    path.write_text(yaml.safe_dump(_plain(d), sort_keys=False), encoding="utf-8")
    return path


def _plain(v: Any) -> Any:
    if isinstance(v, dict) or hasattr(v, "items"):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_plain(x) for x in v]
    return v


class AppProcess:
    """Start the app in its own process; `kill()` is a real SIGKILL (no cleanup of any kind runs)."""

    def __init__(self, cfg: Config, directory: Path) -> None:
        self.cfg = cfg
        self.config_path = write_config(cfg, directory)
        self.log_path = directory / "app.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> AppProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR")}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "ivr", "run", "-c", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(Path(__file__).resolve().parents[2]))
        log.close()
        url = f"http://127.0.0.1:{self.cfg.http.port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"app exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200 and json.loads(r.read()).get("ari_connected"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"app not healthy after {timeout}s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
