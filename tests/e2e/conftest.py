"""e2e fixtures: flows copied to a temp dir (plus the test flows), agents as real pyVoIP softphones, the
callback flows and config (with a carrier trunk: ``callbacks_support.asterisk_with_trunks``)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from ivr.sim.softphone import AgentPhone
from tests.e2e.callbacks_support import FLOWS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def flow_cfg(cfg, tmp_path):
    d = tmp_path / "flows"
    d.mkdir()
    for f in (REPO / "flows").glob("*.yaml"):
        shutil.copy(f, d)
    for f in (Path(__file__).parent / "flows").glob("*.yaml"):
        shutil.copy(f, d)
    routes = {**cfg.flows.routes, "300": "quick", "400": "acd", "500": "flood", "600": "voicemail"}
    # fresh state per test: call records and CRM history never leak from one test into the next
    crm = {**cfg.crm, "sqlite": {**cfg.crm.get("sqlite", {}), "path": str(tmp_path / "crm.sqlite")}}
    return dataclasses.replace(cfg, flows=dataclasses.replace(cfg.flows, dir=str(d), routes=routes),
                               storage=dataclasses.replace(cfg.storage, path=str(tmp_path / "ivr.sqlite")),
                               crm=crm)


@pytest.fixture
def cb_cfg(flow_cfg):
    """flow_cfg plus the callback flows (extensions 801-805 of ``callbacks_support.FLOWS``), callbacks
    retried after 2 s at most twice, web requests for topic billing (no website key: add ``api_key``) and
    short queues. Needs a module whose ``asterisk`` has the carrier trunk."""
    d = Path(flow_cfg.flows.dir)
    for name, text in FLOWS.values():
        (d / f"{name}.yaml").write_text(text)
    routes = {**flow_cfg.flows.routes, **{exten: name for exten, (name, _) in FLOWS.items()}}
    cfg = dataclasses.replace(flow_cfg, flows=dataclasses.replace(flow_cfg.flows, routes=routes),
                              callbacks={"retry_delay": 2, "max_attempts": 2, "ring_seconds": 8},
                              web_callbacks={"topics": {"billing": "billing"}, "default_region": "GB"})
    return with_queue_overrides(cfg, wrap_up=0, announce_frequency=None, retry=0)


def with_queue_overrides(cfg, **overrides):
    """Every queue of cfg with some keys replaced (short ring/wrap-up times keep tests fast)."""
    queues = tuple({**q, **overrides} for q in cfg.queues)
    return dataclasses.replace(cfg, queues=queues)


@pytest.fixture
def phones(cfg):
    """Start agent softphones by id: phones("agent1", agent2="ignore"); all stopped at the end."""
    started: list[AgentPhone] = []
    pw = {a.id: a.sip_password for a in cfg.agent_sip()}

    def start(*ids: str, **modes: str) -> dict[str, AgentPhone]:
        out = {}
        for aid, mode in [(i, "answer") for i in ids] + list(modes.items()):
            p = AgentPhone(aid, pw[aid], cfg.asterisk.sip_port, mode=mode).start()
            started.append(p)
            out[aid] = p
        return out

    yield start
    for p in started:
        p.stop()
