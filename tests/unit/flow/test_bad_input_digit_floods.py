"""Digit floods into the pure flow engine: thousands of DTMF events into menus and collects keep a call bounded
(path, type-ahead, collected digits), behave as documented, take little time, and secure digits never show up
anywhere (path, commands, reprs, the simulator's transcript, log records)."""

from __future__ import annotations

import logging
import textwrap
import time
from datetime import UTC, datetime

import pytest

from ivr.flow import CallInfo, CustomerData, DigitReceived, Enqueue, Hangup, Play, load_flow_sources
from ivr.flow.engine import MAX_PATH_HEAD, MAX_PATH_TAIL, MAX_TYPEAHEAD
from ivr.flow.simulate import Script, simulate

pytestmark = pytest.mark.timeout(60)

PIN = "9753"
FLOOD = 10_000

FLOW = """
flow: t
entry: menu
nodes:
  menu:
    type: menu
    prompt: sound:vm-press
    options: {"1": again, "2": pin, "3": code}
    max_attempts: 3
  again: {type: play, prompt: sound:beep, next: menu, barge_in: true}
  pin:
    type: collect
    variable: pin
    secure: true
    prompt: sound:agent-pass
    min_length: 4
    max_length: 4
    pattern: "97[0-9]+"
    retries: 2
    next: done
  code:
    type: collect
    variable: code
    prompt: sound:agent-pass
    max_length: 20
    terminator: "#"
    next: done
  done: {type: queue, queue: billing}
"""

CRM_FLOW = """
flow: c
entry: check
customer_wait: 2
nodes:
  check:
    type: branch
    rules: [{when: {var: customer.tier, eq: vip}, goto: pin}]
    default: pin
  pin:
    type: collect
    variable: pin
    secure: true
    min_length: 4
    max_length: 4
    next: say
  say: {type: play, prompt: "digits:{customer.account_id}", next: done}
  done: {type: queue, queue: billing}
"""


def _visible(call) -> str:
    runner = call.runner
    return "\n".join([repr(runner), repr(runner.variables), str(dict(runner.variables)), repr(runner.path),
                      " ".join(map(str, runner.path)), runner.keys_pressed, repr(runner.visited_nodes),
                      repr(call.commands), " ".join(map(str, call.commands))])


def _bounded(runner) -> None:
    assert len(runner.path) <= MAX_PATH_HEAD + MAX_PATH_TAIL + 1
    assert len(runner._typeahead) <= MAX_TYPEAHEAD
    assert len(runner._digits) <= 20


def _flood(call, digits: str) -> float:
    t0 = time.perf_counter()
    for d in digits:
        call.press(d)
    return time.perf_counter() - t0


def test_flood_into_a_looping_menu_keeps_the_path_bounded(drive):
    call = drive(FLOW)
    call.start()
    elapsed = _flood(call, "1" * FLOOD)
    runner = call.runner
    assert elapsed < 10
    _bounded(runner)
    assert runner.path_steps > FLOOD                       # every key was handled ...
    path = [str(s) for s in runner.path]
    assert path[0] == "t:menu" and path[1] == "key 1"      # ... the path keeps its start,
    assert sum(s.startswith("skipped ") for s in path) == 1    # says how much it left out,
    assert path[-1] in ("t:menu", "t:again", "key 1")      # and keeps the latest steps
    assert len(runner.keys_pressed) <= MAX_PATH_HEAD + MAX_PATH_TAIL
    assert not runner.finished
    call.press("2")                                         # still responsive after the flood
    assert runner.node_name in ("pin", "again") or runner.node_name == "menu"


def test_flood_of_invalid_keys_ends_politely_after_max_attempts(drive):
    call = drive(FLOW)
    call.start()
    _flood(call, "9" * FLOOD)
    runner = call.runner
    assert runner.waiting_for == "playback"                   # the goodbye prompt; later keys ignored
    assert [str(s) for s in runner.path].count("invalid") == 3
    assert len(runner.path) < 20
    call.played()
    assert runner.finished and runner.end_reason == "invalid_input"
    assert isinstance(call.commands[-2], Hangup)
    n = len(call.commands)
    _flood(call, "1" * 100)
    assert len(call.commands) == n                              # nothing after the end


def test_secure_collect_flood_hides_the_pin_everywhere(drive, caplog):
    caplog.set_level(logging.DEBUG)
    call = drive(FLOW)
    call.start()
    call.press("2")
    assert call.runner.input_is_secure
    elapsed = _flood(call, (PIN * (FLOOD // len(PIN) + 1))[:FLOOD])
    runner = call.runner
    assert elapsed < 10
    _bounded(runner)
    assert runner.variables["pin"].reveal() == PIN
    assert next(c for c in call.commands if isinstance(c, Enqueue)).queue == "billing"
    assert runner.waiting_for == "queue_result"                 # the flood after the PIN is ignored in queue
    visible = _visible(call)
    assert PIN not in visible and PIN[1:] not in visible and "***" in visible
    for record in caplog.records:
        assert PIN not in record.getMessage()


def test_secure_collect_flood_of_wrong_pins_fails_after_the_retries(drive):
    call = drive(FLOW)
    call.start()
    call.press("2")
    _flood(call, "1234" * (FLOOD // 4))
    runner = call.runner
    _bounded(runner)
    assert [str(s) for s in runner.path].count("invalid") == 3          # first try + 2 retries
    assert "pin" not in runner.variables
    assert "1234" not in _visible(call)


def test_collect_flood_without_terminator_stops_at_max_length_each_time(drive):
    call = drive(FLOW)
    call.start()
    call.press("3")
    _flood(call, "5" * FLOOD)
    runner = call.runner
    _bounded(runner)
    assert runner.variables["code"] == "5" * 20
    assert runner.waiting_for == "queue_result"


def test_flood_while_waiting_for_the_crm_is_capped_type_ahead(drive):
    call = drive(CRM_FLOW, flow="c", customer_lookup=True)
    call.start()
    assert call.runner.waiting_for == "customer_data"
    _flood(call, (PIN * (FLOOD // 4))[:FLOOD])
    assert len(call.runner._typeahead) == MAX_TYPEAHEAD
    call.feed(CustomerData({"customer.tier": "standard", "customer.account_id": "1" * 10_000}))
    runner = call.runner
    assert runner.variables["pin"].reveal() == PIN              # the type-ahead was the PIN
    # a 10,000-digit CRM field is never played: the prompt is skipped, the flow goes on to the queue
    assert not [c for c in call.commands if isinstance(c, Play) and any("1111" in m for m in c.media)]
    assert runner.waiting_for == "queue_result"
    assert PIN not in _visible(call)


@pytest.mark.parametrize("bad", ["", "10", "x", "\u0663", "\uff11", "**", "\x00", "1" * 10_000, "e"])
def test_digit_events_accept_only_one_dtmf_key(bad):
    with pytest.raises(ValueError):
        DigitReceived(bad)


def test_simulator_with_a_flood_masks_the_pin_and_stays_short(caplog):
    caplog.set_level(logging.DEBUG)
    flowset, diags = load_flow_sources([("t.yaml", textwrap.dedent(FLOW))])
    assert flowset is not None, diags
    at = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
    t0 = time.perf_counter()
    sim = simulate(flowset, "t", CallInfo("sim", caller="5550100"), lambda: at,
                   Script(digits=("2", PIN * 2500), queue_outcomes=("timeout",)))
    assert time.perf_counter() - t0 < 10
    assert PIN not in sim.text and PIN[1:] not in sim.text
    assert max(len(line) for line in sim.lines) < 2000
    assert "input pin=***" in sim.text
    for record in caplog.records:
        assert PIN not in record.getMessage()


CALLBACK_FLOW = """
flow: cb
entry: cb
nodes:
  cb: {type: callback, queue: sales, next: bye}
  bye: {type: hangup}
"""


@pytest.mark.parametrize("caller", ["anonymous", "Restricted", "", "9" * 10_000, "'; DROP TABLE callbacks;--",
                                    "+44 20 7946 0018\r\nX: y", "sip:+442079460018@evil", "\uff10\uff12\uff10\uff17",
                                    "12", "+" + "1" * 25, "(((--)))"])
def test_callback_to_an_implausible_caller_id_is_skipped(drive, caller):
    from ivr.flow import RequestCallback

    call = drive(CALLBACK_FLOW, flow="cb", caller=caller)
    call.start()
    assert not [c for c in call.commands if isinstance(c, RequestCallback)]
    assert "callback sales skipped: no number" in [str(s) for s in call.runner.path]


@pytest.mark.parametrize("caller", ["+442079460018", "020 7946 0018", "(212) 555-0123", "5551234"])
def test_callback_to_a_plausible_caller_id_is_requested(drive, caller):
    from ivr.flow import RequestCallback

    call = drive(CALLBACK_FLOW, flow="cb", caller=caller)
    call.start()
    assert [c.number for c in call.commands if isinstance(c, RequestCallback)] == [caller]
