"""What the e2e files about work that waits without a phone line share (callbacks, voicemail as work, web
requests; and the transfers through the same trunk): a module's own Asterisk with a trunk 'carrier' to a
loopback port where a sipp UAS (``ivr.sim.carrier``) stands in for the carrier, the callback flows the
``cb_cfg`` fixture (tests/e2e/conftest.py) installs, and small helpers reading the app's state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from ivr.config import TrunkConfig
from ivr.sim.ports import free_udp_block
from ivr.sim.sipp import SippCaller, SippProcess
from ivr.tasks import TaskKind, TaskState
from tests.support.stack import make_test_config, wait_for

CUSTOMER = "+441632960777"        # the number a caller asks to be called back on
OTHER = "+441632960888"           # a second customer
CALLER_ID = "+442079460000"       # what the trunk presents
TYPED = "07700900456"             # a number the caller types instead (national, GB)
WEB_KEY = "website-key-for-tests"  # the website's key for POST /api/callbacks

# ------------------------------------------------------------------------------------------ the carrier trunk


def asterisk_with_trunks(*extra: Callable[[], TrunkConfig], **carrier: str):
    """A module-scoped ``asterisk`` fixture (overriding the session's): this module's own Asterisk with the
    trunk 'carrier' (``trunks[0]``; ``carrier`` adds fields such as ``caller_name``) and the ``extra``
    trunks (factories, called when the fixture starts). Use: ``asterisk = asterisk_with_trunks()``.

    Each trunk's port is a free block below the kernel's ephemeral range and outside Asterisk's and the
    phones' RTP ranges (30000-60000), so nothing else binds it between the tests' carriers."""

    @pytest.fixture(scope="module")
    def asterisk():
        from ivr.asterisk import AsteriskError, AsteriskInstance

        trunk = TrunkConfig(name="carrier", host="127.0.0.1", port=free_udp_block(2), caller_id=CALLER_ID,
                            **carrier)
        inst = AsteriskInstance(dataclasses.replace(make_test_config(), trunks=(trunk, *(f() for f in extra))))
        try:
            inst.start()
        except AsteriskError as e:
            pytest.fail(f"cannot start the real Asterisk for e2e tests: {e}")
        yield inst
        inst.remove()

    return asterisk


# ---------------------------------------------------------------------------------------- callback flows
def callback_flow(name: str, number: str, wait: float = 2) -> str:
    """A caller who waits ``wait`` s in billing, then asks for a callback on ``number`` (the callback node)."""
    return f"""
flow: {name}
entry: number
nodes:
  number:
    type: set
    variables: {{cbnum: "{number}"}}
    next: queue
  queue:
    type: queue
    queue: billing
    max_wait: {wait}
    on_timeout: callback
  callback:
    type: callback
    queue: billing
    variable: cbnum
    next: bye
  bye:
    type: hangup
    prompt: sound:vm-goodbye
"""


#: the caller waits 2 s in billing, then asks for a callback on CUSTOMER (the flow's callback node)
FLOW = callback_flow("cb_queue", CUSTOMER)

#: a caller who just waits in billing
LIVE = """
flow: cb_live
entry: queue
nodes:
  queue:
    type: queue
    queue: billing
"""

#: the caller waits 2 s in billing, then leaves a message in mailbox support
VOICEMAIL = """
flow: cb_voicemail
entry: queue
nodes:
  queue:
    type: queue
    queue: billing
    max_wait: 2
    on_timeout: message
  message:
    type: voicemail
    mailbox: support
    max_seconds: 15
"""

#: extension -> (flow name, flow text)
FLOWS = {
    "801": ("cb_queue", FLOW),
    "802": ("cb_live", LIVE),
    "803": ("cb_queue2", callback_flow("cb_queue2", OTHER)),
    "804": ("cb_confirm", FLOW.replace("cb_queue", "cb_confirm").replace("    variable: cbnum\n",
                                                                         "    variable: cbnum\n    confirm: true\n")),
    "805": ("cb_voicemail", VOICEMAIL),
}

# ------------------------------------------------------------------------------------------------ helpers


def callback_caller(cfg, exten: str = "801") -> SippProcess:
    """A sipp caller to one of FLOWS that stays until the app hangs it up (started at once)."""
    return SippProcess(SippCaller(exten, steps=[], end="wait_bye"), cfg.asterisk.sip_port, 40)


async def callback_task(app, state: TaskState | None = None):
    """The newest callback task (in ``state``), waited for."""
    def find():
        tasks = app.task_book.recent(kind=TaskKind.CALLBACK)
        return tasks[0] if tasks and (state is None or tasks[0].state is state) else None
    return await wait_for(find, 30, what=f"a callback task {state.value if state else ''}")


def task_in(app, task_id: str, state: TaskState):
    """The task if it is in ``state`` now, else None (for ``wait_for``)."""
    t = app.task_book.get(task_id)
    return t if t is not None and t.state is state else None


async def bridge_of(ari, task_id: str):
    """The bridge (on Asterisk) joining the agent's leg of a task and the customer, once both are in it."""
    for b in await ari.bridges():
        if b.id.startswith(f"call-{task_id}") and len(b.channels) == 2:
            return b
    return None


async def assert_audio_both_ways(ari, bridge) -> None:
    """Each leg of ``bridge`` sent and received RTP (Asterisk's own counters)."""
    for leg in bridge.channels:
        stats = await ari.rtp_statistics(leg)
        assert stats.get("txcount", 0) > 0 and stats.get("rxcount", 0) > 0, (leg, stats)


def agent_free(app, agent_id: str = "agent1") -> bool:
    return app.acd.router.agent_snapshot(agent_id).state.value == "available"


def agents_busy(app, agents=("agent1", "agent3")) -> bool:
    return any(s.state.value != "available" for s in app.acd.router.agents_snapshot()
               if s.agent_id in agents and s.registered)


async def api_tasks(http, base: str, admin_token: str, query: str = "") -> list[dict] | None:
    """``GET /api/tasks`` with the admin token (what a supervisor sees), or None if it did not answer 200."""
    async with http.get(f"{base}/api/tasks{'?' + query if query else ''}",
                        headers={"Authorization": f"Bearer {admin_token}"}) as r:
        return (await r.json())["tasks"] if r.status == 200 else None


# ------------------------------------------------------------------- routing decisions, why-not, CRM history


async def api_get(http, cfg, path: str) -> tuple[int, dict]:
    """``GET path`` on the app's HTTP port with the admin token: (status, JSON body)."""
    async with http.get(f"http://127.0.0.1:{cfg.http.port}{path}",
                        headers={"Authorization": f"Bearer {cfg.http.admin_token}"}) as r:
        return r.status, await r.json()


async def why_not(http, cfg, task_id: str, agent_id: str) -> tuple[int, dict]:
    """``GET /api/tasks/{task_id}/why-not/{agent_id}``: (status, JSON body)."""
    return await api_get(http, cfg, f"/api/tasks/{task_id}/why-not/{agent_id}")


def reasons_by_code(answer: dict) -> dict[str, dict]:
    """The reasons of a why-not answer, by code."""
    return {r["code"]: r for r in answer.get("reasons", ())}


async def task_decisions(http, cfg, task_id: str) -> list[dict]:
    """The routing decisions ``GET /api/tasks/{id}`` returns, each checked for what docs/api.md promises: when,
    to whom, for which attempt, a one-line summary and the router's whole explanation of that offer."""
    status, body = await api_get(http, cfg, f"/api/tasks/{task_id}")
    assert status == 200, body
    decisions = body["decisions"]
    for d in decisions:
        assert set(d) >= {"at", "agent_id", "attempt", "summary", "explanation"}, d
        assert isinstance(d["at"], (int, float)) and d["summary"].strip(), d
        e = d["explanation"]
        assert isinstance(e, dict) and e.get("agent_id") == d["agent_id"] and e.get("queue") == body["queue"], d
        assert e.get("trigger") and e.get("reason") and e.get("requirement"), d
        assert d["agent_id"] in [c["agent_id"] for c in e.get("candidates", ())], d   # the winner was a candidate
    return decisions


async def assert_not_routable(http, cfg, task_id: str, agent_id: str, state: str, outcome: str,
                              decisions: list[dict]) -> None:
    """why-not on a task that has ended: 409 task-not-routable with the task's stored decisions, those that
    chose ``agent_id`` under ``offered_to_agent``."""
    status, body = await why_not(http, cfg, task_id, agent_id)
    assert status == 409 and body["error_id"] == "task-not-routable", body
    details = body["details"]
    assert details["task_id"] == task_id and details["state"] == state and details["outcome"] == outcome, details
    assert details["decisions"] == decisions, details
    assert details["offered_to_agent"] == [d for d in decisions if d["agent_id"] == agent_id], details


async def screen_of(http, cfg, agent_id: str, call_id: str):
    """The agent's screen pop (``GET /api/agents/{id}/screen``) once it is for ``call_id``, else None (for
    ``wait_for``); its ``history`` is the caller's CRM history (the page's "Recent history")."""
    status, body = await api_get(http, cfg, f"/api/agents/{agent_id}/screen")
    screen = body.get("screen") if status == 200 else None
    return screen if screen is not None and screen.get("call_id") == call_id \
        and screen.get("history") is not None else None
