"""Callback tasks on the phones (``ivr/calls/task_legs.py``) through the real App, task book and router,
against the loopback fake ARI: the agent's leg first, the whisper, then the customer dialled through the
trunk; busy customers, agents who hang up or miss, and a restart with a task in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ivr.acd import AgentState
from ivr.calls import task_legs
from ivr.calls.task_book import NewTask
from ivr.tasks import Task, TaskKind, TaskState
from tests.support.component_app import Stack, agent_endpoints, component_config, component_stack, running_app
from tests.support.fake_ari import FakeAri

NUMBER = "+447700900123"
CUSTOMER = f"PJSIP/{NUMBER}@trunk-carrier"
RETRY = 120.0


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with component_stack(component_config(retry_delay=RETRY, max_attempts=3)) as s:
        yield s


def add_callback(stack: Stack) -> str:
    book, legs = stack.app.task_book, stack.app.task_legs
    assert book is not None and legs is not None
    task = book.add(NewTask(TaskKind.CALLBACK, "billing", number=NUMBER, name="Ada Lovelace"))
    legs.wake()
    return task.id


def task(stack: Stack, task_id: str) -> Task:
    assert stack.app.task_book is not None
    t = stack.app.task_book.get(task_id)
    assert t is not None
    return t


async def offered_leg(stack: Stack, task_id: str, endpoint: str = "PJSIP/agent1") -> str:
    """The task's agent leg ringing at ``endpoint``; checks the originate the app made for it."""
    leg = await stack.ringing_leg(endpoint, f"the task offered at {endpoint}")
    originate = [r for r in stack.fake.originates() if r.path == f"/channels/{leg}"][-1]
    assert leg.startswith(f"{task_id}-a") and originate.query["appArgs"] == f"task,{task_id}"
    assert NUMBER in originate.query["callerId"] and "Ada Lovelace" in originate.query["callerId"]
    return leg


async def whisper_done(stack: Stack, leg: str) -> str:
    """Answer the agent leg, let the whisper play out; returns the customer leg being dialled."""
    fake = stack.fake
    fake.answer(leg)
    [whisper] = await stack.until(lambda: fake.playing(leg), "the whisper")
    assert whisper.media[:2] == ("sound:calling", f"digits:{NUMBER[-4:]}")   # the last four digits
    assert not fake.legs_to(CUSTOMER), "the customer is dialled after the whisper, not before"
    fake.finish_playbacks(leg)
    return await stack.ringing_leg(CUSTOMER, "the customer dialled through the trunk")


async def let_agent_go(stack: Stack, leg: str) -> None:
    """The agent hears "number not answering" to the end; then their leg is hung up."""
    fake = stack.fake
    await stack.until(lambda: [p for p in fake.playing(leg) if p.media == ("sound:number-not-answering",)],
                      "the agent told the number is not answering")
    fake.finish_playbacks(leg)
    await stack.until(lambda: leg not in fake.channels, "the agent leg hung up")


def assert_nothing_left(stack: Stack) -> None:
    fake, legs = stack.fake, stack.app.task_legs
    assert legs is not None
    assert not fake.channels, f"channels left: {sorted(fake.channels)}"
    assert not fake.bridges, f"bridges left: {sorted(fake.bridges)}"
    assert not legs.legs() and not stack.app.transfer_legs.legs()


async def test_a_callback_rings_the_agent_then_the_customer_and_bridges_them(stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    await stack.settle()
    assert task(stack, task_id).state is TaskState.OFFERED and task(stack, task_id).agent_id == "agent1"
    assert stack.agent_state("agent1") is AgentState.RESERVED

    customer = await whisper_done(stack, leg)
    assert task(stack, task_id).state is TaskState.CONNECTING
    assert [r.query["appArgs"] for r in fake.originates() if r.path == f"/channels/{customer}"] == \
        [f"transfer,{leg}"]
    fake.answer(customer)
    await stack.until(lambda: task(stack, task_id).state is TaskState.DONE, "the task done")
    [bridge] = fake.bridges.values()
    assert sorted(bridge.channels) == sorted([leg, customer])
    assert stack.agent_state("agent1") is AgentState.ON_CALL
    assert task(stack, task_id).outcome == "answered"

    fake.hangup(customer)                # the customer hangs up: the agent is let go, wrap-up follows
    await stack.until(lambda: not fake.channels and not fake.bridges, "both legs and the bridge gone")
    await stack.settle()
    assert stack.agent_state("agent1") is AgentState.WRAP_UP
    assert_nothing_left(stack)


async def test_a_busy_customer_is_retried_later_at_the_tasks_place(stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    customer = await whisper_done(stack, leg)
    before = time.time()
    fake.fail(customer, cause=17)
    await stack.until(lambda: [p for p in fake.playing(leg) if p.media == ("sound:number-not-answering",)],
                      "the agent told the number is not answering")
    await stack.settle()
    assert [p.media for p in fake.playing(leg)] == [("sound:number-not-answering",)], "ringback stopped"
    t = task(stack, task_id)
    assert t.state is TaskState.WAITING and t.attempts == 1 and t.not_before is not None and t.not_before >= before + RETRY - 1
    fake.finish_playbacks(leg)
    await stack.until(lambda: leg not in fake.channels, "the agent leg hung up")
    await stack.settle()
    assert len(fake.originates()) == 2, "not offered again before its retry time"
    assert stack.agent_state("agent1") is AgentState.WRAP_UP
    assert task(stack, task_id).state is TaskState.WAITING
    assert_nothing_left(stack)


async def test_the_agent_hanging_up_during_the_whisper_puts_the_task_back_without_an_attempt(
        stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    fake.answer(leg)
    await stack.until(lambda: fake.playing(leg), "the whisper")
    fake.hangup(leg)
    await stack.until(lambda: not stack.app.task_legs or not stack.app.task_legs.owns_leg(leg), "leg forgotten")
    await stack.settle()
    t = task(stack, task_id)
    assert t.attempts == 0, "no customer dial-out was used"
    assert t.state in (TaskState.WAITING, TaskState.OFFERED), "back at its place (maybe offered again)"
    assert any(h.reason.startswith("agent hung up") for h in t.history)
    assert not fake.bridges and not fake.legs_to(CUSTOMER)


async def test_no_customer_is_dialled_once_the_agent_hung_up_during_the_whisper(stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    fake.answer(leg)
    await stack.until(lambda: fake.playing(leg), "the whisper")
    fake.hangup(leg)
    await stack.settle()
    assert not [r for r in fake.originates() if r.query["endpoint"] == CUSTOMER]


async def test_no_customer_is_dialled_when_the_agent_hangs_up_during_the_whisper_on_a_slow_asterisk(
        stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    fake.answer(leg)
    await stack.until(lambda: fake.playing(leg), "the whisper")
    fake.hangup(leg, linger=True)        # the whisper ends with the hang-up; the channel not destroyed yet
    await stack.settle()
    fake.complete_hangup(leg)
    await stack.settle()
    assert task(stack, task_id).attempts == 0
    assert not [r for r in fake.originates() if r.query["endpoint"] == CUSTOMER]


async def test_an_agent_leg_that_is_not_answered_counts_a_miss_and_goes_to_the_next_agent(stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    fake.fail(leg, cause=19)
    await offered_leg(stack, task_id, "PJSIP/agent3")
    await stack.settle()
    t = task(stack, task_id)
    assert (t.state, t.agent_id, t.attempts) == (TaskState.OFFERED, "agent3", 0)
    assert any(h.to_state is TaskState.WAITING and "no-answer" in h.reason for h in t.history)
    assert stack.misses("agent1") == 1 and stack.agent_state("agent1") is AgentState.AVAILABLE


async def test_a_restart_with_a_task_offered_puts_it_back_and_offers_it_again() -> None:
    cfg = component_config(retry_delay=RETRY)
    async with FakeAri(password=cfg.ari.password, app=cfg.ari.app, endpoints=agent_endpoints(cfg)) as fake:
        async with running_app(cfg, fake) as first:
            task_id = add_callback(first)
            old_leg = await offered_leg(first, task_id)
            assert task(first, task_id).state is TaskState.OFFERED
        assert old_leg in fake.channels, "Asterisk keeps the ringing leg while the app is down"
        async with running_app(cfg, fake) as second:
            new_leg = await offered_leg(second, task_id)
            await second.settle()
            assert new_leg != old_leg and old_leg not in fake.channels, "the old leg hung up, a new one rings"
            t = task(second, task_id)
            assert t.state is TaskState.OFFERED and t.attempts == 0
            assert [h.to_state for h in t.history] == [TaskState.OFFERED, TaskState.WAITING, TaskState.OFFERED]


async def test_a_customer_who_does_not_answer_in_time_is_hung_up_and_retried() -> None:
    async with component_stack(component_config(retry_delay=RETRY, ring_seconds=0.1)) as stack:
        fake = stack.fake
        task_id = add_callback(stack)
        leg = await offered_leg(stack, task_id)
        customer = await whisper_done(stack, leg)
        await stack.until(lambda: task(stack, task_id).attempts == 1, "the attempt counted")
        t = task(stack, task_id)
        assert t.state is TaskState.WAITING and "no_answer" in t.history[-1].reason
        assert customer not in fake.channels, "hung up by our ring timer"
        await let_agent_go(stack, leg)
        await stack.settle()
        assert_nothing_left(stack)


async def test_a_busy_customer_on_the_last_attempt_fails_the_task() -> None:
    async with component_stack(component_config(retry_delay=RETRY, max_attempts=1)) as stack:
        fake = stack.fake
        task_id = add_callback(stack)
        leg = await offered_leg(stack, task_id)
        customer = await whisper_done(stack, leg)
        fake.fail(customer, cause=17)
        await stack.until(lambda: task(stack, task_id).state is TaskState.FAILED, "the task failed")
        assert task(stack, task_id).outcome == "busy" and task(stack, task_id).attempts == 1
        await let_agent_go(stack, leg)
        await stack.settle()
        assert len(fake.originates()) == 2, "never offered again"
        assert_nothing_left(stack)


async def test_the_agent_hanging_up_while_the_customer_rings_cancels_the_customer_leg(stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    customer = await whisper_done(stack, leg)
    fake.hangup(leg)
    await stack.until(lambda: customer not in fake.channels, "the customer leg cancelled")
    await stack.settle()
    t = task(stack, task_id)
    assert t.attempts == 0 and t.state in (TaskState.WAITING, TaskState.OFFERED)
    assert stack.agent_state("agent1") is AgentState.WRAP_UP
    assert not fake.bridges and not fake.legs_to(CUSTOMER)


async def test_the_agent_hanging_up_the_conversation_lets_the_customer_go(stack: Stack) -> None:
    fake = stack.fake
    task_id = add_callback(stack)
    leg = await offered_leg(stack, task_id)
    customer = await whisper_done(stack, leg)
    fake.answer(customer)
    await stack.until(lambda: task(stack, task_id).state is TaskState.DONE, "the task done")
    fake.hangup(leg)
    await stack.until(lambda: not fake.channels and not fake.bridges, "the customer let go, the bridge gone")
    await stack.settle()
    assert stack.agent_state("agent1") is AgentState.WRAP_UP
    assert task(stack, task_id).state is TaskState.DONE
    assert_nothing_left(stack)


async def test_a_restart_while_the_customer_rings_leaves_no_customer_leg_ringing() -> None:
    cfg = component_config(retry_delay=RETRY)
    async with FakeAri(password=cfg.ari.password, app=cfg.ari.app, endpoints=agent_endpoints(cfg)) as fake:
        async with running_app(cfg, fake) as first:
            task_id = add_callback(first)
            leg = await offered_leg(first, task_id)
            customer = await whisper_done(first, leg)
            assert task(first, task_id).state is TaskState.CONNECTING
        async with running_app(cfg, fake) as second:
            await offered_leg(second, task_id)       # back at its place, offered again
            t = task(second, task_id)
            assert t.attempts == 0 and "interrupted by a restart" in [h.reason for h in t.history]
            assert leg not in fake.channels, "the old agent leg hung up"
            for _ in range(2):                       # the janitor's two sweeps (suspect, then acted on)
                await second.app.janitor.sweep()
            await second.settle()
            assert customer not in fake.channels, "the customer's phone left ringing after the restart"


async def test_an_agent_leg_whose_originate_timed_out_is_not_left_ringing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_legs, "LEG_RECHECK", 0.5)
    async with component_stack(component_config(retry_delay=RETRY), request_timeout=0.2) as stack:
        fake = stack.fake
        # Asterisk is slow: the app gives up on the originate after 0.2 s, Asterisk rings the phone at 0.4 s
        fake.inject("POST", "/channels/task-*-a*", delay=0.4, apply=True)
        task_id = add_callback(stack)
        [late] = await stack.until(lambda: fake.legs_to("PJSIP/agent1"), "the late leg ringing at agent1")
        await stack.until(lambda: late.id not in fake.channels, "the late leg hung up by the recheck", timeout=3)
        await stack.settle()
        t = task(stack, task_id)
        assert (t.state, t.agent_id) == (TaskState.OFFERED, "agent3"), "the next agent has the task"
        assert stack.misses("agent1") == 0, "a timeout is not the agent's fault"
        assert not fake.legs_to("PJSIP/agent1")


async def test_a_busy_customer_is_called_again_once_the_retry_delay_is_over() -> None:
    async with component_stack(component_config(retry_delay=0.2)) as stack:
        fake = stack.fake
        task_id = add_callback(stack)
        leg = await offered_leg(stack, task_id)
        fake.fail(await whisper_done(stack, leg), cause=17)
        await let_agent_go(stack, leg)             # agent1 goes to wrap-up
        again = await offered_leg(stack, task_id, "PJSIP/agent3")
        t = task(stack, task_id)
        assert (t.state, t.attempts, t.agent_id) == (TaskState.OFFERED, 1, "agent3")
        retried = await whisper_done(stack, again)
        fake.answer(retried)
        await stack.until(lambda: task(stack, task_id).state is TaskState.DONE, "done on the second attempt")


# Regression: task_legs._offer once reported an originate that failed with router.offer_failed(task) without
# checking that this offer was still the current one (the router may have withdrawn it meanwhile).


async def test_a_failed_originate_of_a_withdrawn_offer_leaves_the_next_offer_alone(stack: Stack) -> None:
    fake = stack.fake
    # agent1's originate is slow and fails (its phone is going away); meanwhile the phone unregisters, the
    # router withdraws that offer and offers the task to agent3
    fake.inject("POST", "/channels/task-*-a*", delay=0.1, status=500)
    task_id = add_callback(stack)
    await stack.until(lambda: fake.in_flight, "agent1's originate in flight")
    fake.set_endpoint("PJSIP/agent1", "offline")
    leg3 = await offered_leg(stack, task_id, "PJSIP/agent3")
    await asyncio.sleep(0.15)            # agent1's originate fails now
    await stack.settle()
    assert stack.app.dispatcher.handler_errors == 0
    t = task(stack, task_id)
    assert (t.state, t.agent_id) == (TaskState.OFFERED, "agent3"), \
        f"agent3's offer stands (agent3 misses {stack.misses('agent3')}, its leg live: {leg3 in fake.channels})"
    assert leg3 in fake.channels and stack.misses("agent3") == 0
    fake.answer(leg3)
    await stack.until(lambda: fake.playing(leg3), "agent3 hears the whisper")
    assert task(stack, task_id).state is TaskState.CONNECTING


async def test_a_failed_originate_of_a_withdrawn_offer_breaks_nothing(stack: Stack) -> None:
    fake, acd = stack.fake, stack.app.acd
    assert acd is not None
    fake.set_endpoint("PJSIP/agent3", "offline")         # agent1 is the only billing agent
    await stack.until(lambda: not acd.router.agent_snapshot("agent3").registered, "agent3 unregistered")
    fake.inject("POST", "/channels/task-*-a*", delay=0.1, status=500)
    task_id = add_callback(stack)
    await stack.until(lambda: fake.in_flight, "agent1's originate in flight")
    fake.set_endpoint("PJSIP/agent1", "offline")
    await asyncio.sleep(0.15)
    await stack.settle()
    assert stack.app.dispatcher.handler_errors == 0
    assert task(stack, task_id).state is TaskState.WAITING
    fake.set_endpoint("PJSIP/agent1", "online")          # back: the task is offered again
    await offered_leg(stack, task_id)


async def test_an_agent_who_lets_the_task_ring_out_is_missed_and_the_next_agent_rung() -> None:
    # Asterisk ends the unanswered leg at the originate's timeout (the queue's ring_timeout, 15 s) with
    # cause 19; the fake's ring clock runs 100 times faster
    async with component_stack(component_config(retry_delay=RETRY), ring_time_scale=0.01) as stack:
        fake = stack.fake
        task_id = add_callback(stack)
        leg = await offered_leg(stack, task_id)
        assert [r.query["timeout"] for r in fake.originates()] == ["15"]
        await offered_leg(stack, task_id, "PJSIP/agent3")
        await stack.settle()
        assert leg not in fake.channels and stack.misses("agent1") == 1
        t = task(stack, task_id)
        assert (t.state, t.agent_id, t.attempts) == (TaskState.OFFERED, "agent3", 0)


async def test_an_offer_withdrawn_while_its_leg_is_being_originated_leaves_no_leg_ringing(stack: Stack) -> None:
    fake, acd = stack.fake, stack.app.acd
    assert acd is not None
    fake.inject("POST", "/channels/task-*-a*", delay=0.1, apply=True)     # Asterisk slow to make agent1's leg
    task_id = add_callback(stack)
    await stack.until(lambda: fake.in_flight, "agent1's originate in flight")
    await acd.agent_action("agent1", "logout")                            # the offer is withdrawn meanwhile
    await stack.until(lambda: not fake.in_flight, "the originate done")
    await stack.settle()
    assert not fake.legs_to("PJSIP/agent1"), "agent1's phone rings for a task withdrawn from them"
    t = task(stack, task_id)
    assert t.agent_id != "agent1"
