"""Test stack: a real Asterisk on free loopback ports and the app running in-process against it."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ivr.app import App, SessionFactory
from ivr.ari import AriClient
from ivr.config import Config, load_config, with_overrides
from ivr.sim.ports import free_tcp_port, free_udp_port, free_udp_range


def make_test_config(base: str | None = None, data_dir: str | None = None, **overrides) -> Config:
    """The sample config moved onto free loopback ports with a fresh random ARI password; state files
    (call records, CRM) go to `data_dir` (a fresh temp dir by default), never into the repo."""
    import dataclasses
    import tempfile
    cfg = load_config(base or os.path.join(os.path.dirname(__file__), "..", "..", "config", "ivr.yaml"),
                      env={})
    rtp = free_udp_range(200)
    sections = {
        "asterisk": {"sip_port": free_udp_port(), "http_port": free_tcp_port(), "rtp_start": rtp[0],
                     "rtp_end": rtp[1], "instance": f"test-{os.getpid()}-{secrets.token_hex(3)}"},
        "ari": {"password": secrets.token_urlsafe(12), "reconnect_min": 0.1, "reconnect_max": 1.0},
        "http": {"port": free_tcp_port(), "admin_token": secrets.token_urlsafe(12)},
        "flows": {"watch": False},
    }
    data_dir = data_dir or tempfile.mkdtemp(prefix="ivr-test-")
    sections["storage"] = {"path": os.path.join(data_dir, "ivr.sqlite")}
    for k, v in overrides.items():
        sections.setdefault(k, {}).update(v)
    cfg = with_overrides(cfg, **sections)
    # every agent gets a fresh random SIP password (rendered into the test Asterisk's pjsip.conf)
    agents = tuple({**a, "sip_password": secrets.token_urlsafe(9)} for a in cfg.agents)
    cfg = dataclasses.replace(cfg, agents=agents)
    crm = dict(cfg.crm)
    if crm.get("backend") == "sqlite":
        crm["sqlite"] = {**crm.get("sqlite", {}), "path": os.path.join(data_dir, "crm.sqlite")}
    # no seeded users: a test creates the users it needs (the bootstrap admin token works until an admin
    # user exists; tests/e2e/test_users_e2e.py)
    return dataclasses.replace(cfg, crm=crm, users=())


def ari_client(cfg: Config) -> AriClient:
    return AriClient(cfg.ari_url, cfg.ari.user, cfg.ari.password, cfg.ari.app)


@asynccontextmanager
async def running_app(cfg: Config, factory: SessionFactory | None = None, app_cls: type = App,
                      **kwargs) -> AsyncIterator[App]:
    app = app_cls(cfg, factory, **kwargs)
    task = asyncio.create_task(app.run())
    try:
        await asyncio.wait_for(app.ready.wait(), 15)
        yield app
    finally:
        app.stop()
        await asyncio.wait_for(task, 15)


async def wait_for(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def assert_no_leaks(ari: AriClient, timeout: float = 10.0) -> None:
    """Asterisk has no channels and no bridges left (checked on Asterisk itself, not our state)."""
    async def empty() -> bool:
        return not await ari.channels() and not await ari.bridges()
    try:
        await wait_for(empty, timeout, 0.1, "no channels and no bridges on Asterisk")
    except AssertionError:
        chans = [(c.id, c.name, c.state) for c in await ari.channels()]
        bridges = [(b.id, b.channels) for b in await ari.bridges()]
        raise AssertionError(f"leaked on Asterisk: channels={chans} bridges={bridges}") from None
