"""Secure collects: the digits never show up in the path, the commands, or any repr/str."""

from __future__ import annotations

import pickle
import textwrap
from datetime import UTC, datetime

import pytest

from ivr.flow import CallInfo, PathStep, RequestCallback, Secret, StoreVoicemail, load_flow_sources
from ivr.flow.simulate import Script, simulate

PIN = "97531"     # digits that appear nowhere else in the flow or the call

SECURE_FLOW = """
flow: t
entry: menu
nodes:
  menu:
    type: menu
    prompt: sound:vm-press
    options: {"1": pin}
    on_timeout: pin
  pin:
    type: collect
    variable: pin
    secure: true
    prompt: sound:agent-pass
    min_length: 5
    max_length: 5
    pattern: "9[0-9]+"
    next: check
  check:
    type: branch
    rules: [{when: {var: pin, matches: "^97"}, goto: ok}]
    default: menu
  ok:
    type: queue
    queue: billing
    on_timeout: bye
  bye: {type: voicemail, mailbox: support}
"""


def everything_visible(call) -> str:
    runner = call.runner
    parts = [repr(runner), str(runner), repr(runner.variables), str(dict(runner.variables)),
             repr(runner.path), " ".join(map(str, runner.path)), runner.keys_pressed,
             repr(runner.visited_nodes), repr(call.commands), " ".join(map(str, call.commands))]
    return "\n".join(parts)


def test_secure_digits_never_appear_anywhere(drive):
    call = drive(SECURE_FLOW, caller="+15550100")
    call.start()
    call.played()
    call.press("1")
    call.played()
    assert call.runner.input_is_secure
    call.type(PIN)
    assert not call.runner.input_is_secure
    assert call.commands[-1].queue == "billing"                  # the branch could read it
    assert call.runner.variables["pin"].reveal() == PIN
    assert PathStep("input", "pin=***") in call.runner.path
    visible = everything_visible(call)
    assert PIN not in visible
    for fragment in (PIN[:3], PIN[1:4], PIN[2:]):
        assert fragment not in visible
    assert "***" in visible


def test_secure_digits_never_appear_after_a_failed_attempt(drive):
    call = drive(SECURE_FLOW)
    call.start()
    call.played()
    call.press("1")
    call.type("12345")                                           # wrong pattern: invalid, retried
    assert [str(s) for s in call.runner.path][-1] == "invalid"
    assert "12345" not in everything_visible(call)



@pytest.fixture
def secure_flowset():
    flowset, diagnostics = load_flow_sources([("t.yaml", textwrap.dedent(SECURE_FLOW))])
    assert flowset is not None, diagnostics
    return flowset


def test_simulator_transcript_masks_secure_input(secure_flowset):
    at = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
    sim = simulate(secure_flowset, "t", CallInfo("sim", caller="5550100"), lambda: at,
                   Script(digits=("1", PIN), queue_outcomes=("timeout",)))
    assert PIN not in sim.text
    assert "  caller presses *****" in sim.lines
    assert "input pin=***" in sim.text


def test_secret_hides_its_value():
    secret = Secret(PIN)
    assert str(secret) == "***" and repr(secret) == "Secret('***')"
    assert f"{secret}" == "***" and f"{secret:>10}" == "***" and format(secret, "") == "***"
    assert secret == Secret(PIN) and secret != Secret("1") and secret != PIN
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_call_info_and_commands_keep_numbers_out_of_repr():
    at = datetime(2025, 1, 1, tzinfo=UTC)
    for thing in (CallInfo("c1", caller="+15559876543", did="+15551111111"),
                  RequestCallback("sales", at, "+15559876543"),
                  StoreVoicemail("support", "vm-1", 3.0, at, "+15559876543")):
        assert "9876543" not in repr(thing) and "1111111" not in repr(thing)
