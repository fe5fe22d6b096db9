"""The janitor's plan (pure) and its sweep against a fake ARI."""

from __future__ import annotations

import asyncio

from ivr.ari import Bridge, Channel, Unavailable
from ivr.calls.janitor import Claims, Janitor, JanitorDeps, SweepPlan, plan_sweep


def ours(cid: str) -> Channel:
    return Channel(cid, raw={"dialplan": {"app_name": "Stasis", "app_data": "ivr,inbound"}})


def other(cid: str) -> Channel:
    return Channel(cid, raw={"dialplan": {"app_name": "Dial", "app_data": "PJSIP/x"}})


def claims(sessions=(), legs=(), queued=(), bridges=()) -> Claims:
    return Claims(frozenset(sessions), frozenset(legs), frozenset(queued), frozenset(bridges))


def is_ours(c: Channel) -> bool:
    return (c.raw.get("dialplan") or {}).get("app_name") == "Stasis"


def plan(channels, bridges, cl, suspects=frozenset(), pending=()):
    return plan_sweep(channels, bridges, cl, is_ours=is_ours, pending=lambda k: k in pending,
                      suspects=suspects)


def twice(channels, bridges, cl, pending=()):
    p1, s = plan(channels, bridges, cl, pending=pending)
    assert not p1, "nothing is cleaned the first time it looks wrong"
    return plan(channels, bridges, cl, s, pending=pending)


def test_live_calls_are_left_alone():
    chans = [ours("c1"), ours("c1-a3"), ours("c2"), other("pjsip-unrelated")]
    bridges = [Bridge("call-c1", channels=("c1", "c1-a3")), Bridge("holding-xyz")]
    cl = claims(sessions={"c1", "c2"}, legs={"c1-a3"}, queued={"c1", "c2"}, bridges={"call-c1"})
    p, s = twice(chans, bridges, cl)
    assert p == SweepPlan() and not s


def test_a_bridge_of_no_live_call_is_destroyed_on_the_second_sweep():
    bridges = [Bridge("call-dead", channels=()), Bridge("call-c1", channels=("c1",)), Bridge("other")]
    cl = claims(sessions={"c1"}, queued={"c1"}, bridges={"call-c1"})
    p, s = twice([ours("c1")], bridges, cl)
    assert p.destroy_bridges == ("call-dead",) and not p.hangup and not p.gone and not s


def test_orphan_channels_are_hung_up_but_not_ones_with_events_pending_or_not_ours():
    chans = [ours("orphan"), ours("x-a7"), ours("new"), other("someone-else")]
    p, s = twice(chans, [], claims(), pending={"new"})
    assert p.hangup == ("orphan", "x-a7")


def test_an_agent_leg_is_a_leftover_even_outside_stasis():
    p, _ = twice([other("c9-a2")], [], claims())
    assert p.hangup == ("c9-a2",)


def test_a_dialled_leg_nobody_tracks_is_a_leftover_even_outside_stasis():
    """After a restart a transfer target or a callback's customer may still ring (not yet in Stasis)."""
    legs = [other("c1-t3"), other("task-ab12-a1-t7"), other("c2-t4")]
    p, _ = twice(legs, [], claims(legs=("c2-t4",)))
    assert p.hangup == ("c1-t3", "task-ab12-a1-t7")


def test_app_calls_whose_channel_is_gone_are_reported_gone():
    cl = claims(sessions={"s1"}, legs={"c2-a1"}, queued={"q1", "s1"})
    p, _ = twice([], [], cl, pending=())
    assert p.gone == ("c2-a1", "q1", "s1")


def test_a_suspect_that_recovered_is_forgotten():
    cl = claims(sessions={"c1"})
    p1, s1 = plan([], [], cl)                # c1 not listed yet: a suspect
    assert ("gone", "c1") in s1
    p2, s2 = plan([ours("c1")], [], cl, s1)  # now it is there: not gone, and no longer a suspect
    assert not p2 and not s2
    p3, s3 = plan([], [], cl, s2)            # gone again: a suspect only
    assert not p3 and s3


class FakeAri:
    def __init__(self, channels, bridges) -> None:
        self.ch, self.br = list(channels), list(bridges)
        self.hung: list[str] = []
        self.destroyed: list[str] = []
        self.down = False

    async def channels(self):
        if self.down:
            raise Unavailable("GET", "/channels", 0, "timeout")
        return self.ch

    async def bridges(self):
        return self.br

    async def hangup_quietly(self, cid, reason=None):
        self.hung.append(cid)
        return True

    async def destroy_bridge(self, bid):
        if bid == "call-fails":
            raise Unavailable("DELETE", f"/bridges/{bid}", 0, "timeout")
        self.destroyed.append(bid)


def test_sweep_carries_out_the_plan_and_counts_it():
    async def main():
        ari = FakeAri([ours("orphan")], [Bridge("call-dead"), Bridge("call-fails")])
        gone, cleaned = [], {}
        deps = JanitorDeps(ari=ari, claims=lambda: claims(sessions={"lost"}), is_ours=is_ours,
                           pending=lambda k: False, report_gone=gone.append, connected=lambda: True,
                           on_cleaned=lambda what, n: cleaned.__setitem__(what, cleaned.get(what, 0) + n))
        j = Janitor(deps, interval=0.01)
        assert not await j.sweep()
        ari.down = True
        assert not await j.sweep()            # ARI down: nothing done, suspects kept
        ari.down = False
        p = await j.sweep()
        assert ari.hung == ["orphan"] and ari.destroyed == ["call-dead"] and gone == ["lost"]
        assert p.destroy_bridges == ("call-dead", "call-fails")
        assert cleaned == {"bridge": 1, "channel": 1, "call": 1}   # the bridge that failed is not counted
    asyncio.run(main())
