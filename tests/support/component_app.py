"""The component stack: the real ``ivr.app.App`` (router, task book, flows, web server) against the fake ARI
of ``tests/support/fake_ari.py`` on loopback, no Asterisk. Tests play the phones through ``stack.fake`` and
look at the app's state and at the fake's channels, bridges and requests.

Waiting: ``settle()`` returns once nothing moves (no request being handled, no event waiting to be written
or received, no event being handled), so a test can assert what did *not* happen; ``until(pred)`` waits for
a condition. Both take milliseconds on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ivr.acd import AgentState
from ivr.app import App
from ivr.calls.clock import Clock
from ivr.config import Config, TrunkConfig, with_overrides

from .fake_ari import FakeAri
from .stack import make_test_config

#: The flows of the component tier: 400 plays a welcome and a one-key menu before the billing queue; 401 goes
#: straight to the billing queue (races need no prompts); 402 plays one prompt, then the queue.
FLOWS = {
    "lang.yaml": """\
flow: lang
description: component tests, a language menu
entry: choose
language: en
nodes:
  choose:
    type: menu
    prompt: [sound:vm-press, digits:1, sound:vm-press, digits:2]
    options:
      "1": english
      "2": french
    timeout: 5
    on_invalid: english
    on_timeout: english
  english:
    type: set
    variables: {language: en}
    next: welcome
  french:
    type: set
    variables: {language: fr}
    next: welcome
  welcome:
    type: play
    prompt: sound:hello-world
    next: goodbye
  goodbye:
    type: hangup
""",
    "comp.yaml": """\
flow: comp
description: component tests, through a menu
entry: welcome
language: en
nodes:
  welcome:
    type: play
    prompt: sound:hello-world
    next: menu
  menu:
    type: menu
    prompt: [sound:vm-press, digits:1]
    options:
      "1": billing
    timeout: 5
    invalid_prompt: sound:pbx-invalid
    on_invalid: billing
    on_timeout: billing
  billing:
    type: queue
    queue: billing
    on_timeout: goodbye
    on_no_agents: goodbye
    on_full: goodbye
  goodbye:
    type: hangup
""",
    "direct.yaml": """\
flow: direct
description: component tests, straight to the queue
entry: billing
language: en
nodes:
  billing:
    type: queue
    queue: billing
    on_timeout: goodbye
    on_no_agents: goodbye
    on_full: goodbye
  goodbye:
    type: hangup
""",
    "announce.yaml": """\
flow: announce
description: component tests, one prompt then the queue
entry: welcome
language: en
nodes:
  welcome:
    type: play
    prompt: sound:hello-world
    next: billing
  billing:
    type: queue
    queue: billing
    on_timeout: goodbye
    on_no_agents: goodbye
    on_full: goodbye
  goodbye:
    type: hangup
""",
}
TRUNK = TrunkConfig(name="carrier", host="127.0.0.1", port=5099)


def component_config(data_dir: str | None = None, **callbacks: Any) -> Config:
    """The sample config (agents agent1-4, queues billing/technical/sales/legacy) with the component flows
    on 400-403, no CRM, one trunk ``carrier``, lenient admission (a busy CI box must not shed calls), and the
    callback policy overridden by ``callbacks``. The ARI URL is set by ``component_stack``."""
    data_dir = data_dir or tempfile.mkdtemp(prefix="ivr-comp-")
    flow_dir = os.path.join(data_dir, "flows")
    os.makedirs(flow_dir, exist_ok=True)
    for name, text in FLOWS.items():
        with open(os.path.join(flow_dir, name), "w") as f:
            f.write(text)
    cfg = make_test_config(data_dir=data_dir, flows={"dir": flow_dir, "default": "comp",
                                                     "routes": {"400": "comp", "401": "direct", "402": "announce",
                                                                "403": "lang"}, "watch": False})
    return dataclasses.replace(cfg, crm={"backend": "none"}, trunks=(TRUNK,), callbacks=dict(callbacks),
                               admission={"enabled": False})


def with_ari(cfg: Config, fake: FakeAri, request_timeout: float = 2.0) -> Config:
    # the fake speaks REST over HTTP only: REST over websockets is shown on the real Asterisk
    # (tests/e2e/test_ari_rest_websocket_e2e.py)
    return with_overrides(cfg, ari={"url": fake.url, "user": fake.user, "password": fake.password,
                                    "app": fake.app_name, "request_timeout": request_timeout,
                                    "rest_websockets": 0})


def agent_endpoints(cfg: Config) -> dict[str, str]:
    """Every agent's phone registered (``online``)."""
    return {str(a.get("endpoint", f"PJSIP/{a['id']}")): "online" for a in cfg.agents}


@dataclass
class Stack:
    fake: FakeAri
    app: App
    cfg: Config

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait until nothing moves between the app and the fake for a few polls."""
        deadline = time.monotonic() + timeout
        quiet, last = 0, None
        while quiet < 4:
            snapshot = (len(self.fake.requests), self.fake.written, self.app.events.events_received)
            # everything is in one event loop: an event the fake wrote is read within a poll or two
            still = self.fake.quiet and not self.app.dispatcher.active_keys
            quiet = quiet + 1 if still and snapshot == last else 0
            last = snapshot
            if time.monotonic() > deadline:
                raise AssertionError("the app and the fake ARI did not settle")
            await asyncio.sleep(0.002)

    async def until(self, pred: Callable[[], Any], what: str = "condition", timeout: float = 2.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (v := pred()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.002)
        return v

    # --------------------------------------------------------------------------- shortcuts
    def agent_state(self, agent_id: str) -> AgentState:
        assert self.app.acd is not None
        return self.app.acd.router.agent_snapshot(agent_id).state

    def misses(self, agent_id: str) -> int:
        assert self.app.acd is not None
        return self.app.acd.router.agent_snapshot(agent_id).misses

    async def ringing_leg(self, endpoint: str, what: str = "") -> str:
        """The id of the (newest) leg the app originated to this endpoint, once there is one."""
        legs = await self.until(lambda: self.fake.legs_to(endpoint), what or f"a leg to {endpoint}")
        return str(legs[-1].id)


@asynccontextmanager
async def running_app(cfg: Config, fake: FakeAri, *, request_timeout: float = 2.0,
                      clock: Clock | None = None) -> AsyncIterator[Stack]:
    """The real App on ``cfg`` against ``fake``: ready (connected, reconciled, tasks pumped) on entry,
    stopped on exit. ``request_timeout``: the app's ARI request timeout (``fake.inject(delay=...)``);
    ``clock``: the glue's clock (``tests/support/fake_clock.FakeClock``: its timers run on ``advance``)."""
    app = App(with_ari(cfg, fake, request_timeout), clock=clock)
    task = asyncio.get_running_loop().create_task(app.run(), name="component-app")
    stack = Stack(fake, app, cfg)
    try:
        await asyncio.wait_for(app.ready.wait(), 5)
        await stack.settle()
        yield stack
    finally:
        app.stop()
        await asyncio.wait_for(task, 5)


@asynccontextmanager
async def component_stack(cfg: Config | None = None, *, request_timeout: float = 2.0, clock: Clock | None = None,
                          **fake_options: Any) -> AsyncIterator[Stack]:
    """A fake ARI with every agent's phone registered, and the App running against it."""
    cfg = cfg or component_config()
    async with FakeAri(password=cfg.ari.password, app=cfg.ari.app, endpoints=agent_endpoints(cfg),
                       **fake_options) as fake, running_app(cfg, fake, request_timeout=request_timeout, clock=clock) as stack:
        yield stack
