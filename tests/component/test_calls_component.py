"""Live calls through the real App (flows, ACD router, dispatcher) against the loopback fake ARI: a caller
in a queue, the agent's leg, the bridge, and the races between them (a caller hanging up while the leg is
being originated, ringing or answered; a busy agent). The e2e tier proves the same on the real Asterisk."""

from __future__ import annotations

import asyncio

import pytest

from ivr.acd import AgentState
from ivr.calls import live_offers, waiting_media
from tests.support.component_app import Stack, component_stack
from tests.support.fake_clock import FakeClock

CALLER = "+442071234567"


def assert_nothing_left(stack: Stack) -> None:
    """Nothing left on the fake Asterisk, nor in the app's books."""
    fake, app = stack.fake, stack.app
    assert app.acd is not None
    assert not fake.channels, f"channels left: {sorted(fake.channels)}"
    assert not fake.bridges, f"bridges left: {sorted(fake.bridges)}"
    assert not app.sessions and not app.acd.calls and not app.acd.legs


async def test_a_caller_goes_through_the_menu_to_the_agent_and_back_out(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "400")
    [welcome] = await stack.until(lambda: fake.playing(caller), "the welcome prompt")
    assert welcome.media == ("sound:hello-world",) and fake.channels[caller].state == "Up"
    fake.finish_playbacks(caller)
    [menu] = await stack.until(lambda: fake.playing(caller), "the menu prompt")
    assert menu.media == ("sound:vm-press", "digits:1")
    fake.dtmf(caller, "1")

    leg = await stack.ringing_leg("PJSIP/agent1", "the best billing agent's phone ringing")
    [originate] = fake.originates()
    assert originate.path == f"/channels/{leg}" and leg.startswith(f"{caller}-a")
    assert originate.query["appArgs"] == f"agent,{caller}" and originate.query["app"] == "ivr"
    await stack.until(lambda: fake.channels[caller].moh,
                      "the caller hears music while the agent's phone rings (after MUSIC_DELAY)")
    assert stack.agent_state("agent1") is AgentState.RESERVED

    fake.answer(leg)
    bridge = await stack.until(lambda: fake.bridges.get(f"call-{caller}"), "the conversation bridge")
    await stack.until(lambda: len(bridge.channels) == 2, "both legs in the bridge")
    assert sorted(bridge.channels) == sorted([caller, leg])
    await stack.settle()
    assert not fake.channels[caller].moh
    assert stack.agent_state("agent1") is AgentState.ON_CALL

    fake.hangup(leg)                     # the agent hangs up: the flow has no on_answered, the caller is let go
    await stack.until(lambda: not fake.bridges and not fake.channels, "the bridge and the caller gone")
    await stack.settle()
    assert stack.agent_state("agent1") is AgentState.WRAP_UP
    assert_nothing_left(stack)


async def test_the_caller_hangs_up_while_the_agent_leg_is_being_originated(stack: Stack) -> None:
    fake = stack.fake
    # the originate is held 100 ms (then carried out): the caller hangs up meanwhile
    fake.inject("POST", "/channels/*-a*", delay=0.1, apply=True)
    caller = fake.incoming_call(CALLER, "401")
    await stack.until(lambda: fake.in_flight and fake.requests[-1].path.startswith(f"/channels/{caller}-a"),
                      "the originate in flight")
    fake.hangup(caller)
    await stack.settle()
    assert len(fake.originates()) == 1, "the leg is not rung again"
    assert stack.agent_state("agent1") is AgentState.AVAILABLE
    assert_nothing_left(stack)


async def test_the_caller_hangs_up_while_the_agent_phone_rings(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "401")
    leg = await stack.ringing_leg("PJSIP/agent1")
    await stack.settle()
    fake.hangup(caller)
    await stack.until(lambda: leg not in fake.channels, "the agent leg hung up")
    await stack.settle()
    assert any(r.method == "DELETE" and r.path == f"/channels/{leg}" for r in fake.requests)
    assert stack.agent_state("agent1") is AgentState.AVAILABLE and stack.misses("agent1") == 0
    assert_nothing_left(stack)


async def test_the_agent_answers_as_the_caller_hangs_up(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "401")
    leg = await stack.ringing_leg("PJSIP/agent1")
    await stack.settle()
    fake.hangup(caller)                  # both in the same instant: the app sees both, in this order
    fake.answer(leg)
    await stack.settle()
    assert stack.agent_state("agent1") in (AgentState.AVAILABLE, AgentState.WRAP_UP)
    assert_nothing_left(stack)


async def test_a_busy_agent_leg_goes_to_the_next_agent(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "401")
    first = await stack.ringing_leg("PJSIP/agent1")
    fake.fail(first, cause=17)
    second = await stack.ringing_leg("PJSIP/agent3", "the next billing agent's phone ringing")
    assert second != first and second.startswith(f"{caller}-a")
    await stack.settle()
    assert first not in fake.channels and stack.misses("agent1") == 1
    assert stack.agent_state("agent1") is AgentState.AVAILABLE     # resting a moment, not reserved
    fake.answer(second)
    await stack.until(lambda: len(getattr(fake.bridges.get(f"call-{caller}"), "channels", ())) == 2,
                      "caller and agent3 bridged")
    assert stack.agent_state("agent3") is AgentState.ON_CALL
    fake.hangup(caller)                  # the caller hangs up: the agent leg and the bridge go
    await stack.until(lambda: not fake.channels and not fake.bridges, "everything torn down")
    await stack.settle()
    assert stack.agent_state("agent3") is AgentState.WRAP_UP
    assert_nothing_left(stack)


async def test_an_originate_asterisk_fails_is_looked_up_and_offered_again_without_a_miss(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_offers, "OFFER_CHECK_DELAY", 0.05)
    fake = stack.fake
    fake.inject("POST", "/channels/*-a*", status=500)     # Asterisk's trouble (5xx), not the agent's
    caller = fake.incoming_call(CALLER, "401")
    await stack.until(lambda: len(fake.originates()) == 2, "a second offer")
    first, second = fake.originates()
    assert any(r.method == "GET" and r.path == first.path for r in fake.requests), "the failed leg looked up"
    leg = second.path.removeprefix("/channels/")
    assert leg != first.path.removeprefix("/channels/") and leg in fake.channels
    await stack.settle()
    assert stack.misses("agent1") == 0, "not the agent's fault: no miss"
    fake.hangup(caller)
    await stack.until(lambda: leg not in fake.channels, "the ringing leg cancelled")
    await stack.settle()
    assert_nothing_left(stack)


async def test_an_agent_whose_phone_unregisters_is_not_rung(stack: Stack) -> None:
    fake, acd = stack.fake, stack.app.acd
    assert acd is not None
    fake.set_endpoint("PJSIP/agent1", "offline")
    await stack.until(lambda: not acd.router.agent_snapshot("agent1").registered, "agent1 unregistered")
    caller = fake.incoming_call(CALLER, "401")
    leg = await stack.ringing_leg("PJSIP/agent3", "the other billing agent rung")
    assert [r.query["endpoint"] for r in fake.originates()] == ["PJSIP/agent3"]
    fake.hangup(caller)
    await stack.until(lambda: leg not in fake.channels, "the ringing leg cancelled")
    await stack.settle()
    assert_nothing_left(stack)


async def test_a_caller_who_hangs_up_during_the_prompt_before_the_queue_rings_no_agent(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "402")
    await stack.until(lambda: fake.playing(caller), "the prompt before the queue")
    fake.hangup(caller)
    await stack.settle()
    assert not fake.originates(), "an agent's phone rang for a caller who had hung up"
    assert_nothing_left(stack)


async def test_a_call_that_ended_while_the_events_connection_was_down_is_ended_on_reconnect(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "401")
    leg = await stack.ringing_leg("PJSIP/agent1")
    fake.answer(leg)
    await stack.until(lambda: len(getattr(fake.bridges.get(f"call-{caller}"), "channels", ())) == 2, "bridged")
    await fake.drop_connections()
    fake.hangup(caller)                  # nobody is listening: the app never hears of it
    await stack.until(lambda: stack.app.events.reconnects == 1 and stack.app.ready.is_set(), "reconnected")
    await stack.until(lambda: not fake.channels and not fake.bridges, "the agent leg and the bridge ended")
    await stack.settle()
    filters = [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/eventFilter")]
    assert len(filters) == 2 and "endpoint:PJSIP/agent1" in fake.subscriptions["ivr"], "re-applied on reconnect"
    assert stack.agent_state("agent1") is AgentState.WRAP_UP
    assert_nothing_left(stack)


def test_the_fake_serves_every_operation_the_client_can_make() -> None:
    """Keeps the fake in step with ``ivr/ari/operations.py``: a new operation needs a handler here too."""
    from aiohttp import web

    from ivr.ari.operations import OPERATIONS
    from tests.support.fake_ari import FakeAri
    from tests.support.fake_ari_routes import add_routes

    app = web.Application()
    add_routes(app.router, FakeAri())
    served = {(r.method, r.resource.canonical.removeprefix("/ari")) for r in app.router.routes()
              if r.resource is not None}
    missing = {name: (op.method, op.path) for name, op in OPERATIONS.items()
               if (op.method, _canonical(op.path)) not in {(m, _canonical(p)) for m, p in served}}
    assert not missing, f"the fake ARI lacks {missing}"


def _canonical(path: str) -> str:
    import re
    return re.sub(r"\{\w+\}", "{}", path)


async def test_a_bridge_made_while_its_call_was_ending_is_destroyed_by_the_janitor(stack: Stack) -> None:
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "401")
    leg = await stack.ringing_leg("PJSIP/agent1")
    await stack.settle()
    fake.inject("POST", "/bridges/call-*", delay=0.05, apply=True)   # Asterisk slow to make the bridge
    fake.answer(leg)
    await stack.until(lambda: fake.in_flight, "the bridge being created")
    fake.hangup(caller)                  # meanwhile the caller hangs up: the conversation is torn down
    await stack.settle()
    assert leg not in fake.channels and stack.agent_state("agent1") is AgentState.WRAP_UP
    for _ in range(2):                   # whatever is left is a suspect at the first sweep, removed at the next
        await stack.app.janitor.sweep()
    await stack.settle()
    assert_nothing_left(stack)


async def test_a_callback_keeps_its_place_ahead_of_a_later_caller(stack: Stack) -> None:
    from ivr.calls.task_book import NewTask
    from ivr.tasks import TaskKind, TaskState

    fake, app = stack.fake, stack.app
    assert app.acd is not None and app.task_book is not None and app.task_legs is not None
    fake.set_endpoint("PJSIP/agent3", "offline")                # one billing agent: agent1
    await stack.until(lambda: not app.acd.router.agent_snapshot("agent3").registered, "agent3 unregistered")
    await app.acd.agent_action("agent1", "pause", "lunch")
    task = app.task_book.add(NewTask(TaskKind.CALLBACK, "billing", number="+447700900123", name="Ada"))
    app.task_legs.wake()
    await stack.settle()
    caller = fake.incoming_call(CALLER, "401")                  # a later caller, same queue
    await stack.settle()
    assert not fake.originates(), "nobody to offer to while agent1 is paused"
    await app.acd.agent_action("agent1", "unpause")
    leg = await stack.ringing_leg("PJSIP/agent1")
    assert leg.startswith(f"{task.id}-a"), "the callback, older, goes first"
    assert app.task_book.get(task.id).state is TaskState.OFFERED    # type: ignore[union-attr]
    assert fake.channels[caller].moh, "the caller waits with music"
    fake.hangup(caller)
    fake.fail(leg, cause=17)
    await stack.settle()
    assert not fake.channels


async def test_an_agent_who_lets_the_call_ring_out_is_missed_and_the_next_agent_rung() -> None:
    async with component_stack(ring_time_scale=0.01) as stack:   # Asterisk's originate timeout, 100x faster
        fake = stack.fake
        caller = fake.incoming_call(CALLER, "401")
        first = await stack.ringing_leg("PJSIP/agent1")
        second = await stack.ringing_leg("PJSIP/agent3", "the next agent rung after 15 (fake) seconds")
        assert first not in fake.channels and stack.misses("agent1") == 1
        fake.answer(second)
        await stack.until(lambda: len(getattr(fake.bridges.get(f"call-{caller}"), "channels", ())) == 2, "bridged")
        fake.hangup(caller)
        await stack.until(lambda: not fake.channels and not fake.bridges, "everything torn down")
        await stack.settle()
        assert_nothing_left(stack)


async def test_an_offer_withdrawn_while_its_leg_is_being_originated_leaves_no_leg_ringing(stack: Stack) -> None:
    fake, acd = stack.fake, stack.app.acd
    assert acd is not None
    fake.inject("POST", "/channels/*-a*", delay=0.1, apply=True)          # Asterisk slow to make agent1's leg
    caller = fake.incoming_call(CALLER, "401")
    await stack.until(lambda: fake.in_flight, "agent1's originate in flight")
    await acd.agent_action("agent1", "logout")                            # the offer is withdrawn meanwhile
    await stack.until(lambda: not fake.in_flight, "the originate done")
    await stack.settle()
    assert not fake.legs_to("PJSIP/agent1"), "agent1's phone rings for a call withdrawn from them"
    leg = await stack.ringing_leg("PJSIP/agent3", "the call offered to agent3")
    fake.hangup(caller)
    await stack.until(lambda: leg not in fake.channels, "the ringing leg cancelled")
    await stack.settle()
    assert_nothing_left(stack)


async def test_on_the_fake_clock_a_phone_that_rings_forever_is_given_up_and_the_next_agent_rung() -> None:
    """The router's ring safety net (ring timeout + grace) runs on the injected clock: nothing happens
    before it is due, the leg is hung up and the next agent rung as soon as it is, in milliseconds."""
    clock = FakeClock()
    async with component_stack(ring_time_scale=None, clock=clock) as stack:   # Asterisk never gives up
        fake = stack.fake
        caller = fake.incoming_call(CALLER, "401")
        first = await stack.ringing_leg("PJSIP/agent1")
        await stack.settle()
        clock.advance(10.0)                               # ring timeout 15 s (+ grace): not yet
        await stack.settle()
        assert first in fake.channels and not fake.legs_to("PJSIP/agent3")
        clock.advance(30.0)
        second = await stack.ringing_leg("PJSIP/agent3", "the next agent rung once the ring timed out")
        await stack.until(lambda: first not in fake.channels, "the first leg hung up")
        assert stack.agent_state("agent1") is not AgentState.RESERVED
        fake.answer(second)
        await stack.until(lambda: len(getattr(fake.bridges.get(f"call-{caller}"), "channels", ())) == 2, "bridged")
        session = stack.app.sessions[caller]
        await stack.until(lambda: session.agent_id == "agent3", "the caller's session told who answered")
        assert session.queue_wait == pytest.approx(40.0, abs=0.5)   # fake seconds, on the injected clock
        fake.hangup(caller)
        await stack.until(lambda: not fake.channels and not fake.bridges, "everything torn down")
        await stack.settle()
        assert_nothing_left(stack)


async def test_an_agent_who_answers_at_once_leaves_the_caller_no_burst_of_music(stack: Stack) -> None:
    """With an agent's phone ringing, music waits ``MUSIC_DELAY``: a call answered sooner (an agent on
    auto-answer) starts and stops no music on Asterisk."""
    fake = stack.fake
    caller = fake.incoming_call(CALLER, "401")
    leg = await stack.ringing_leg("PJSIP/agent1")
    fake.answer(leg)
    await stack.until(lambda: len(getattr(fake.bridges.get(f"call-{caller}"), "channels", ())) == 2,
                      "both legs in the bridge")
    await asyncio.sleep(waiting_media.MUSIC_DELAY + 0.2)
    await stack.settle()
    on_caller = [r for r in fake.requests if r.path.startswith(f"/channels/{caller}/")]
    assert not [r for r in on_caller if r.path.endswith("/moh")], "no music started or stopped"
    assert not fake.channels[caller].moh
    fake.hangup(caller)
    await stack.until(lambda: not fake.bridges and not fake.channels, "the bridge and the legs gone")
    await stack.settle()
    assert_nothing_left(stack)


@pytest.mark.parametrize(("key", "language", "requests"), [("1", "en", 0), ("2", "fr", 1)])
async def test_the_channel_language_is_set_only_when_it_changes(stack: Stack, key: str, language: str,
                                                                 requests: int) -> None:
    """A language menu (403): English is the channel's language already, so the flow's own `language: en`
    and choosing English cost no request; French is set on the channel once (Asterisk's own prompts follow
    it)."""
    fake = stack.fake
    caller = fake.incoming_call("+442071230000", "403")
    await stack.until(lambda: fake.playing(caller), "the language menu")
    fake.finish_playbacks(caller)
    fake.dtmf(caller, key)
    await stack.until(lambda: fake.playing(caller), "the welcome prompt")
    await stack.settle()
    sets = [r for r in fake.requests if r.path == f"/channels/{caller}/variable"
            and r.query.get("variable") == "CHANNEL(language)"]
    assert len(sets) == requests, sets
    assert fake.channels[caller].language == language
    fake.hangup(caller)
    await stack.until(lambda: not fake.channels, "the caller gone")
