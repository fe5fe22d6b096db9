"""What the flows promise is what a real call does (real Asterisk, sipp callers, pyVoIP agent phones).

Every way out of a queue reaches the node the flow names, and the caller is never left in limbo: the queue's
max_wait, the flow's max_wait (also on the shipped VIP branch of flows/support.yaml), no agents (join_empty
and leave_when_empty), full, answered with the agent hanging up (the flow hangs up, or goes on at
on_answered: a survey whose key is recorded), answered with the caller hanging up. A queue node's
optional_skills pick the agent who holds them. The test flow (tests/e2e/flows/promises.yaml) sends each
exit to its own node, which plays a distinct sound and hangs up: the call's path shows which node ran, and
reaching `bye` after it means Asterisk played that sound to the end."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from ivr.acd import AgentState
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

LINE = "600"
VIP = "+442079460001"        # a VIP customer of the sample CRM


def _cfg(flow_cfg, **queue_overrides):
    cfg = with_queue_overrides(flow_cfg, **queue_overrides) if queue_overrides else flow_cfg
    return dataclasses.replace(cfg, flows=dataclasses.replace(cfg.flows, routes={**cfg.flows.routes,
                                                                               LINE: "promises"}))


def _call(cfg, *steps, end="wait_bye", service=LINE, number="caller") -> SippProcess:
    return SippProcess(SippCaller(service, steps=[("pause", 600), *steps], end=end, caller_number=number),
                       cfg.asterisk.sip_port, timeout=60)


async def _new_session(app, seen: set):
    def find():
        for cid, s in app.sessions.items():
            if cid not in seen and not getattr(s, "adopted", False):
                seen.add(cid)
                return s
        return None
    return await wait_for(find, 15, what="a new call in the flow")


def _path(session) -> list[str]:
    return [str(p) for p in session.runner.path]


def _follows(path: list[str], *steps: str) -> bool:
    """`steps` appear in `path` in this order, each right after the previous one."""
    n = len(steps)
    return any(path[i:i + n] == list(steps) for i in range(len(path) - n + 1))


async def _done(sipp: SippProcess, session):
    r = await asyncio.to_thread(sipp.wait)
    assert r.ok, r.stderr
    # closed is set as the session starts ending; the flow's own end (HungUp fed to it) follows a moment later
    await wait_for(lambda: session.closed and session.runner.finished, 10, what="the call and its flow ended")
    return r


async def _wait_registered(app, *agent_ids):
    await wait_for(lambda: all(app.acd.router.agent_snapshot(a).registered for a in agent_ids), 10,
                   what=f"{agent_ids} registered")


def _records(app) -> list[tuple]:
    return [(r["queue"], r["outcome"], r["agent_id"]) for r in app.storage.call_records()]


async def _records_are(app, want: list[tuple]) -> None:
    """The call records, once written: a record is written when the ACD has finished the call, which can
    be a moment after the caller's session closed (the teardown's REST requests come first)."""
    try:
        await wait_for(lambda: sorted(_records(app)) == sorted(want), 5, what="the call records")
    except AssertionError:
        assert sorted(_records(app)) == sorted(want)


class _Heard:
    """What Asterisk played to a channel, in order, from its own log: the verbose line
    ``<PJSIP/...> Playing 'digits/2.gsm' (language 'en')`` it writes for every sound file it streams (a
    ``number:2`` is said as ``digits/2``). PlaybackStarted events cannot tell: for a list of media Asterisk
    names only the last one."""

    def __init__(self, asterisk) -> None:
        self.path = asterisk.host_dir / "log" / "messages.log"
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def __call__(self, channel_name: str) -> list[str]:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            text = f.read().decode(errors="replace")
        return re.findall(rf"<{re.escape(channel_name)}> Playing '([^']+?)\.[a-z0-9]+' ", text)


async def test_announcements_say_the_true_position_and_an_estimate_only_with_data(flow_cfg, asterisk):
    """Two callers wait in billing (no agent phone registered), announcements every 2 s: the first hears
    "you are next", the second "there are 2 calls waiting"; nobody has left the line, so no hold time is
    announced. Once the first caller hangs up (a departure: 1 in the last minute), the second is next and
    hears an estimate of 1 minute (position 1 / 1 departure per 60 s)."""
    cfg = _cfg(flow_cfg, announce_frequency=2)
    heard = _Heard(asterisk)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        seen: set = set()
        first = _call(cfg, ("dtmf", "1"), ("pause", 7000), end="hangup")
        s1 = await _new_session(app, seen)
        await wait_for(lambda: s1.channel_id in app.acd.calls, 10, what="first caller queued")
        second = _call(cfg, ("dtmf", "1"), ("pause", 22000), end="hangup")
        s2 = await _new_session(app, seen)
        await wait_for(lambda: s2.channel_id in app.acd.calls, 10, what="second caller queued")
        c1, c2 = s1.channel.name, s2.channel.name
        await wait_for(lambda: _follows(heard(c2), "queue-thereare", "digits/2", "queue-callswaiting"), 10,
                       what="the second caller hears position 2")
        await wait_for(lambda: "queue-youarenext" in heard(c1), 10, what="the first caller hears that it is next")
        assert "digits/2" not in heard(c1), heard(c1)
        assert app.acd.router.call_snapshot(s2.channel_id).estimated_wait is None
        for name in (c1, c2):               # nobody has left the line yet: no estimate, no number
            assert "queue-holdtime" not in heard(name), heard(name)
        await _done(first, s1)
        assert app.acd.router.call_snapshot(s2.channel_id).position == 1
        assert 59 <= app.acd.router.call_snapshot(s2.channel_id).estimated_wait <= 61
        await wait_for(lambda: _follows(heard(c2), "queue-youarenext", "queue-holdtime", "digits/1",
                                        "queue-minute"), 15, what="the second caller hears it is next, 1 minute")
        await _done(second, s2)
        await _records_are(app, [("billing", "abandoned", None)] * 2)
        await assert_no_leaks(ari)


async def test_announce_position_and_announce_hold_time_switch_each_part_off(flow_cfg, asterisk):
    """billing says only the estimated wait (announce_position: false), technical only the position
    (announce_hold_time: false). One caller leaves each queue first, so both queues have an estimate."""
    cfg = _cfg(flow_cfg, announce_frequency=2)
    cfg = dataclasses.replace(cfg, queues=tuple(
        {**q, "announce_position": False} if q["name"] == "billing" else
        {**q, "announce_hold_time": False} if q["name"] == "technical" else q for q in cfg.queues))
    heard = _Heard(asterisk)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        seen: set = set()
        first = [_call(cfg, ("dtmf", key), ("pause", 1500), end="hangup") for key in ("1", "4")]
        for _ in first:
            await _new_session(app, seen)
        await asyncio.gather(*(asyncio.to_thread(c.wait) for c in first))
        await wait_for(lambda: not app.acd.calls, 10, what="the first two callers gone")
        b = _call(cfg, ("dtmf", "1"), ("pause", 9000), end="hangup")
        sb = await _new_session(app, seen)
        t = _call(cfg, ("dtmf", "4"), ("pause", 9000), end="hangup")
        st = await _new_session(app, seen)
        await wait_for(lambda: sb.channel_id in app.acd.calls and st.channel_id in app.acd.calls, 10,
                       what="both queued")
        cb, ct = sb.channel.name, st.channel.name
        await wait_for(lambda: _follows(heard(cb), "queue-holdtime", "digits/1", "queue-minute"), 10,
                       what="billing: the estimate")
        await wait_for(lambda: "queue-youarenext" in heard(ct), 10, what="technical: the position")
        await _done(b, sb)
        await _done(t, st)
        assert "queue-youarenext" not in heard(cb) and "queue-thereare" not in heard(cb), heard(cb)
        assert "queue-holdtime" not in heard(ct), heard(ct)
        # technical had a departure before (the first caller): the hold time was switched off, not unknown
        assert app.acd.router.queue_snapshot("technical").stats.abandoned == 2
        await assert_no_leaks(ari)


async def test_flow_max_wait_takes_the_caller_out_of_the_queue_and_back_to_the_flow(flow_cfg):
    cfg = _cfg(flow_cfg)                 # no agent phone registered: the caller waits; the queue's max_wait is 300
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        seen: set = set()
        caller = _call(cfg, ("dtmf", "2"))
        s = await _new_session(app, seen)
        await wait_for(lambda: s.channel_id in app.acd.calls, 10, what="queued")
        assert app.acd.router.queue_snapshot("billing").waiting == 1
        # the flow's max_wait (2 s) ends the stay: out of the ACD and the queue's figures, on to its node
        await wait_for(lambda: "promises:flow_timed_out" in _path(s), 10, what="the flow's on_timeout node")
        assert s.channel_id not in app.acd.calls and s.channel_id in app.sessions
        snap = app.acd.router.queue_snapshot("billing")
        assert snap.waiting == 0 and snap.stats.overflow == 1
        await _done(caller, s)
        assert _follows(_path(s), "queue billing timeout", "promises:flow_timed_out", "promises:bye",
                        "end hangup"), _path(s)
        await _records_are(app, [("billing", "overflow", None)])
        assert not app.acd.calls and not app.acd._closing
        await assert_no_leaks(ari)


async def test_queue_max_wait_and_full_reach_their_nodes(flow_cfg):
    cfg = _cfg(flow_cfg, max_wait=4, max_length=1)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        seen: set = set()
        first = _call(cfg, ("dtmf", "1"))
        s1 = await _new_session(app, seen)
        await wait_for(lambda: s1.channel_id in app.acd.calls, 10, what="first caller queued")
        second = _call(cfg, ("dtmf", "1"))         # the queue holds one caller: this one is refused
        s2 = await _new_session(app, seen)
        await _done(second, s2)
        assert _follows(_path(s2), "queue billing full", "promises:full", "promises:bye"), _path(s2)
        assert s1.channel_id in app.acd.calls          # the first still waits
        await _done(first, s1)                         # until the queue's max_wait
        assert _follows(_path(s1), "queue billing timeout", "promises:queue_timed_out", "promises:bye"), \
            _path(s1)
        await _records_are(app, [("billing", "full", None), ("billing", "timeout", None)])
        snap = app.acd.router.queue_snapshot("billing")
        assert snap.waiting == 0 and (snap.stats.full, snap.stats.timeouts) == (1, 1)
        await assert_no_leaks(ari)


async def test_no_agents_at_join_and_when_the_last_agent_leaves(flow_cfg, phones):
    cfg = _cfg(flow_cfg, join_empty=False, leave_when_empty=True)
    phones("agent1")                     # the only billing agent with a phone
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1")
        seen: set = set()
        await app.acd.agent_action("agent1", "logout")
        refused = _call(cfg, ("dtmf", "1"))
        s1 = await _new_session(app, seen)
        await _done(refused, s1)
        assert _follows(_path(s1), "queue billing no_agents", "promises:no_agents", "promises:bye"), _path(s1)
        await app.acd.agent_action("agent1", "login")
        await app.acd.agent_action("agent1", "pause", "lunch")
        waiting = _call(cfg, ("dtmf", "1"))
        s2 = await _new_session(app, seen)
        await wait_for(lambda: s2.channel_id in app.acd.calls, 10, what="queued behind a paused agent")
        await asyncio.sleep(0.5)
        assert "promises:no_agents" not in _path(s2)
        await app.acd.agent_action("agent1", "logout")      # nobody could serve it any more
        await _done(waiting, s2)
        assert _follows(_path(s2), "queue billing no_agents", "promises:no_agents", "promises:bye"), _path(s2)
        await _records_are(app, [("billing", "no_agents", None)] * 2)
        await assert_no_leaks(ari)


async def test_agent_hangs_up_without_on_answered_the_flow_hangs_the_caller_up(flow_cfg, phones):
    cfg = _cfg(flow_cfg, wrap_up=1)
    p = phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1")
        seen: set = set()
        caller = _call(cfg, ("dtmf", "1"), ("audio",))   # waits for Asterisk's BYE
        s = await _new_session(app, seen)
        await wait_for(lambda: (qc := app.acd.calls.get(s.channel_id)) is not None and qc.bridge_id, 20,
                       what="bridged")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(p["agent1"].hangup_all)          # the agent's phone sends BYE
        await _done(caller, s)
        path = _path(s)
        assert path[-2:] == ["queue billing answered", "end queue_answered"], path
        assert s.runner.end_reason == "queue_answered"
        await _records_are(app, [("billing", "answered", "agent1")])
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state == AgentState.AVAILABLE, 10,
                       what="wrap-up over")
        await assert_no_leaks(ari)


async def test_on_answered_survey_after_the_agent_hangs_up_and_not_after_the_caller_does(flow_cfg, phones):
    cfg = _cfg(flow_cfg, wrap_up=0)
    p = phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent1")
        seen: set = set()
        # 1) the agent hangs up first: the caller stays and the survey menu takes its key
        caller = _call(cfg, ("dtmf", "3"), ("pause", 8000), ("dtmf", "2"))
        s = await _new_session(app, seen)
        qc = await wait_for(lambda: (c := app.acd.calls.get(s.channel_id)) is not None and c.bridge_id and c,
                            20, what="bridged")
        leg = qc.leg_id
        await asyncio.sleep(1.0)
        await asyncio.to_thread(p["agent1"].hangup_all)
        await wait_for(lambda: "promises:survey" in _path(s), 10, what="the survey (on_answered)")
        assert s.channel_id in app.sessions and s.channel_id not in app.acd.calls
        channels = {c.id for c in await ari.channels()}
        assert s.channel_id in channels and leg not in channels      # the caller is still there, alone
        await _done(caller, s)
        assert _follows(_path(s), "queue billing answered", "promises:survey", "key 2", "promises:survey_bad",
                        "promises:bye", "end hangup"), _path(s)
        assert s.agent_id == "agent1" and s.outcome == "answered"
        await assert_no_leaks(ari)
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state == AgentState.AVAILABLE, 10,
                       what="agent available")
        # 2) the caller hangs up first: the flow ends there, no survey
        caller = _call(cfg, ("dtmf", "3"), ("audio",), ("pause", 5000), end="hangup")
        s2 = await _new_session(app, seen)
        await _done(caller, s2)
        path = _path(s2)
        assert "queue billing answered" not in path and "promises:survey" not in path, path
        assert path[-1] == "end caller_hangup", path
        await _records_are(app, [("billing", "answered", "agent1")] * 2)
        await wait_for(lambda: p["agent1"].active_calls == 0, 10, what="the agent's phone hung up")
        await assert_no_leaks(ari)


async def test_optional_skills_of_the_queue_node_pick_the_agent_who_holds_them(flow_cfg, phones):
    # agent2 and agent3 differ only by the node's optional skill (vip); without it, agent2 wins every
    # tie (same login time: id tiebreak; after agent3's call: agent2 idle longer)
    agents = tuple({**a, "skills": {"technical": 3, **({"vip": 2} if a["id"] == "agent3" else {})}}
                   if a["id"] in ("agent2", "agent3") else a for a in flow_cfg.agents)
    cfg = dataclasses.replace(_cfg(flow_cfg, wrap_up=0), agents=agents)
    p = phones("agent2", "agent3")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _wait_registered(app, "agent2", "agent3")
        seen: set = set()
        for n in (1, 2):
            caller = _call(cfg, ("dtmf", "4"), ("audio",), ("pause", 4000), end="hangup")
            s = await _new_session(app, seen)
            qc = await wait_for(lambda s=s: (c := app.acd.calls.get(s.channel_id)) is not None and c.bridge_id
                                and c, 20, what="bridged")
            assert qc.agent_id == "agent3" and len(qc.legs_tried) == 1
            await _done(caller, s)
            await wait_for(lambda: app.acd.router.agent_snapshot("agent3").state == AgentState.AVAILABLE, 10,
                           what="agent3 free")
        assert (p["agent2"].rings, p["agent3"].rings) == (0, 2)
        await _records_are(app, [("technical", "answered", "agent3")] * 2)
        await assert_no_leaks(ari)


async def test_shipped_vip_branch_max_wait_goes_back_to_the_main_menu(flow_cfg, tmp_path):
    """flows/support.yaml as shipped (open hours and a short max_wait for the test): a VIP caller no agent
    takes in time is offered the main menu instead of hearing music forever."""
    f = tmp_path / "flows" / "support.yaml"
    text = f.read_text()
    text, n_wait = re.subn(r"(vip_queue:\n(?:    .*\n)*?    max_wait: )120", r"\g<1>2", text)
    text, n_hours = re.subn(r"    hours:\n(?:      .*\n)+?    holidays:\n(?:      .*\n)+",
                            '    hours:\n      mon-sun: "00:00-24:00"\n', text)
    assert (n_wait, n_hours) == (1, 1), "flows/support.yaml changed: update this test"
    f.write_text(text)
    cfg = flow_cfg                       # no agent phone: the VIP waits in technical (queue max_wait 300)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        seen: set = set()
        caller = _call(cfg, ("pause", 9000), service="100", number=VIP, end="hangup")
        s = await _new_session(app, seen)
        await wait_for(lambda: s.channel_id in app.acd.calls, 15, what="the VIP queued")
        entry = app.acd.router._calls[s.channel_id]
        assert dict(entry.call.optional_skills) == {"vip": 5.0}            # the node's optional skills
        await wait_for(lambda: "support:main_menu" in _path(s), 10, what="back at the main menu")
        assert s.channel_id not in app.acd.calls and app.acd.router.queue_snapshot("technical").waiting == 0
        await _done(caller, s)
        assert _follows(_path(s), "support:vip_queue", "queue technical timeout", "support:main_menu"), _path(s)
        await _records_are(app, [("technical", "overflow", None)])
        await assert_no_leaks(ari)
