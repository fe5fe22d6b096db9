"""FlowRunner: event -> command tables for every node type, barge-in, stale events, hangup."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.flow import (
    Answer,
    CancelTimer,
    CustomerData,
    DigitReceived,
    DiscardRecording,
    Enqueue,
    FlowEnded,
    Hangup,
    HungUp,
    NodeEntered,
    Play,
    PlaybackFinished,
    QueueResult,
    Record,
    RecordingFinished,
    RequestCallback,
    Secret,
    SetLanguage,
    StartTimer,
    StopPlayback,
    StoreVoicemail,
    TimerFired,
    Transfer,
)

PLAY = """
flow: t
entry: hello
nodes:
  hello: {type: play, prompt: [sound:hello-world, sound:beep], next: bye}
  bye: {type: hangup}
"""

MENU = """
flow: t
entry: menu
nodes:
  menu:
    type: menu
    prompt: sound:vm-press
    options: {"1": one, "*": menu}
    timeout: 4
    max_attempts: 3
    invalid_prompt: sound:pbx-invalid
    timeout_prompt: sound:please-try-again
    on_invalid: operator
    on_timeout: operator
  one: {type: transfer, destination: PJSIP/one}
  operator: {type: transfer, destination: PJSIP/operator}
"""


def node(name: str, kind: str, flow: str = "t") -> NodeEntered:
    return NodeEntered(flow, name, kind)


# -- play ---------------------------------------------------------------------------------


def test_play_plays_all_prompts_then_goes_next(drive):
    call = drive(PLAY)
    assert call.start() == [Answer(), node("hello", "play"),
                            Play("pb-1", ("sound:hello-world", "sound:beep"), False)]
    assert call.played() == [node("bye", "hangup"), Hangup("normal"), FlowEnded("hangup")]
    assert call.runner.finished and call.runner.end_reason == "hangup"
    assert [str(s) for s in call.runner.path] == ["t:hello", "t:bye", "end hangup"]


def test_play_ignores_type_ahead_without_barge_in(drive):
    call = drive(PLAY)
    call.start()
    assert call.press("1") == []
    assert call.runner.active_playback == "pb-1"
    assert call.played()[0] == node("bye", "hangup")
    assert call.runner.keys_pressed == ""


def test_play_with_barge_in_skips_to_next_and_the_key_reaches_the_menu(drive):
    call = drive("""
        flow: t
        entry: hello
        nodes:
          hello: {type: play, prompt: sound:hello-world, barge_in: true, next: menu}
          menu: {type: menu, prompt: sound:vm-press, options: {"2": two}, on_timeout: two}
          two: {type: transfer, destination: "200"}
    """)
    call.start()
    assert call.press("2") == [StopPlayback("pb-1"), node("menu", "menu"), node("two", "transfer"),
                               Transfer("200")]
    assert call.runner.keys_pressed == "2"


def test_a_key_that_skips_an_announcement_starts_the_next_collect(drive):
    call = drive("""
        flow: t
        entry: hello
        nodes:
          hello: {type: play, prompt: sound:hello-world, barge_in: true, next: ask}
          ask: {type: collect, variable: n, prompt: sound:vm-enter-num-to-call, max_length: 3,
                inter_digit_timeout: 2, next: bye}
          bye: {type: hangup}
    """)
    call.start()
    # No collect prompt: the caller is already typing.
    assert call.press("5") == [StopPlayback("pb-1"), node("ask", "collect"), StartTimer("t-1", 2.0)]
    call.type("67")
    assert call.runner.variables["n"] == "567"


# -- menu ---------------------------------------------------------------------------------


def test_menu_waits_after_prompt_and_routes_a_key(drive):
    call = drive(MENU)
    assert call.start() == [Answer(), node("menu", "menu"), Play("pb-1", ("sound:vm-press",), True)]
    assert call.played() == [StartTimer("t-1", 4.0)]
    assert call.press("1") == [CancelTimer("t-1"), node("one", "transfer"), Transfer("PJSIP/one")]
    assert [str(s) for s in call.runner.path] == ["t:menu", "key 1", "t:one"]


def test_menu_barge_in_stops_the_prompt_at_once_and_handles_the_key(drive):
    call = drive(MENU)
    call.start()
    assert call.press("1") == [StopPlayback("pb-1"), node("one", "transfer"), Transfer("PJSIP/one")]


def test_menu_without_barge_in_ignores_keys_during_the_prompt(drive):
    call = drive(MENU.replace("timeout: 4", "timeout: 4\n    barge_in: false"))
    call.start()
    assert call.press("1") == []
    assert call.played() == [StartTimer("t-1", 4.0)]
    assert call.press("1")[:2] == [CancelTimer("t-1"), node("one", "transfer")]


def test_menu_invalid_key_replays_with_invalid_prompt_then_gives_up(drive):
    call = drive(MENU)
    call.start()
    call.played()
    assert call.press("9") == [CancelTimer("t-1"), Play("pb-2", ("sound:pbx-invalid", "sound:vm-press"), True)]
    assert call.press("8") == [StopPlayback("pb-2"), Play("pb-3", ("sound:pbx-invalid", "sound:vm-press"), True)]
    # Third failed attempt of 3: on_invalid.
    assert call.press("7") == [StopPlayback("pb-3"), node("operator", "transfer"), Transfer("PJSIP/operator")]
    assert [str(s) for s in call.runner.path][:7] == ["t:menu", "key 9", "invalid", "key 8", "invalid",
                                                      "key 7", "invalid"]


def test_menu_timeouts_and_invalid_keys_share_the_attempts(drive):
    call = drive(MENU)
    call.start()
    call.played()
    assert call.timeout() == [Play("pb-2", ("sound:please-try-again", "sound:vm-press"), True)]
    call.played()
    assert call.press("5") == [CancelTimer("t-2"), Play("pb-3", ("sound:pbx-invalid", "sound:vm-press"), True)]
    call.played()
    assert call.timeout() == [node("operator", "transfer"), Transfer("PJSIP/operator")]


def test_menu_without_targets_hangs_up_politely(drive):
    call = drive("""
        flow: t
        entry: menu
        nodes:
          menu: {type: menu, prompt: sound:vm-press, options: {"1": menu}, max_attempts: 1}
    """)
    call.start()
    call.played()
    assert call.timeout() == [Play("pb-2", ("sound:vm-goodbye",), False)]
    assert call.press("1") == []          # no barge-in on the goodbye
    assert call.played() == [Hangup("normal"), FlowEnded("no_input")]


def test_menu_star_repeats_and_resets_attempts(drive):
    call = drive(MENU)
    call.start()
    call.played()
    call.press("9")                        # attempt 1 failed
    call.played()
    assert call.press("*") == [CancelTimer("t-2"), node("menu", "menu"), Play("pb-3", ("sound:vm-press",), True)]
    call.played()
    call.press("9")
    call.played()
    # Two failures since the repeat, of 3 allowed: still in the menu.
    assert call.press("9") == [CancelTimer("t-4"), Play("pb-5", ("sound:pbx-invalid", "sound:vm-press"), True)]


# -- collect ------------------------------------------------------------------------------

COLLECT = """
flow: t
entry: ask
nodes:
  ask:
    type: collect
    variable: account
    prompt: sound:vm-enter-num-to-call
    min_length: 3
    max_length: 5
    terminator: "#"
    first_digit_timeout: 6
    inter_digit_timeout: 2
    pattern: "[1-9][0-9]*"
    retries: 1
    invalid_prompt: sound:pbx-invalid
    timeout_prompt: sound:please-try-again
    next: done
    on_failure: failed
  done: {type: hangup, prompt: "digits:{account}"}
  failed: {type: transfer, destination: PJSIP/operator}
"""


def test_collect_with_terminator(drive):
    call = drive(COLLECT)
    call.start()
    assert call.played() == [StartTimer("t-1", 6.0)]
    assert call.press("4") == [CancelTimer("t-1"), StartTimer("t-2", 2.0)]
    assert call.type("21") == [CancelTimer("t-2"), StartTimer("t-3", 2.0), CancelTimer("t-3"), StartTimer("t-4", 2.0)]
    assert call.press("#") == [CancelTimer("t-4"), node("done", "hangup"), Play("pb-2", ("digits:421",), False)]
    assert call.runner.variables["account"] == "421"
    assert "input account=421" in [str(s) for s in call.runner.path]


def test_collect_ends_at_max_length_and_on_inter_digit_timeout(drive):
    call = drive(COLLECT)
    call.start()
    call.played()
    commands = call.type("12345")
    assert commands[-3:] == [CancelTimer("t-5"), node("done", "hangup"), Play("pb-2", ("digits:12345",), False)]

    call = drive(COLLECT)
    call.start()
    call.played()
    call.type("123")
    assert call.timeout() == [node("done", "hangup"), Play("pb-2", ("digits:123",), False)]


def test_collect_digits_during_the_prompt_are_the_first_digits(drive):
    call = drive(COLLECT)
    call.start()
    assert call.press("9") == [StopPlayback("pb-1"), StartTimer("t-1", 2.0)]
    call.type("87#")
    assert call.runner.variables["account"] == "987"


def test_collect_invalid_input_retries_then_fails(drive):
    call = drive(COLLECT)
    call.start()
    call.played()
    # Too short.
    assert call.type("12#")[-1:] == [Play("pb-2", ("sound:pbx-invalid", "sound:vm-enter-num-to-call"), True)]
    call.played()
    # Pattern mismatch (leading zero); retries: 1 -> on_failure.
    assert call.type("0123#")[-2:] == [node("failed", "transfer"), Transfer("PJSIP/operator")]
    assert "account" not in call.runner.variables
    assert [s.kind for s in call.runner.path].count("invalid") == 2


def test_collect_silence_uses_the_timeout_prompt(drive):
    call = drive(COLLECT)
    call.start()
    call.played()
    assert call.timeout() == [Play("pb-2", ("sound:please-try-again", "sound:vm-enter-num-to-call"), True)]
    assert [str(s) for s in call.runner.path] == ["t:ask", "timeout"]


def test_secure_collect_keeps_a_secret_and_redacts_the_path(drive):
    call = drive("""
        flow: t
        entry: pin
        nodes:
          pin: {type: collect, variable: pin, secure: true, min_length: 4, max_length: 4, next: check}
          check:
            type: branch
            rules: [{when: {var: pin, eq: "2468"}, goto: ok}]
            default: bad
          ok: {type: transfer, destination: "1"}
          bad: {type: transfer, destination: "2"}
    """)
    call.start()
    assert call.runner.input_is_secure
    call.type("2468")
    assert call.runner.variables["pin"] == Secret("2468")
    assert call.commands[-1] == Transfer("1")           # conditions can still read it
    assert [str(s) for s in call.runner.path] == ["t:pin", "input pin=***", "t:check", "t:ok"]
    assert call.runner.keys_pressed == "***"
    assert not call.runner.input_is_secure


# -- branch -------------------------------------------------------------------------------

BRANCH = """
flow: t
entry: route
customer_wait: 1.5
schedules:
  office:
    timezone: Europe/Paris
    hours: {mon-fri: "09:00-17:00"}
nodes:
  route:
    type: branch
    rules:
      - when: {schedule: office, is: closed}
        goto: closed
      - when: {var: customer.tier, eq: vip}
        goto: vip
      - when: {var: caller, matches: '^\\+33'}
        goto: france
    default: other
  closed: {type: transfer, destination: closed}
  vip: {type: transfer, destination: vip}
  france: {type: transfer, destination: france}
  other: {type: transfer, destination: other}
"""


def test_branch_waits_for_customer_data_only_when_a_rule_needs_it(drive):
    call = drive(BRANCH, at=datetime(2025, 3, 4, 20, 0, tzinfo=UTC))   # 21:00 in Paris: closed
    assert call.start()[-1:] == [Transfer("closed")]

    call = drive(BRANCH)
    assert call.start() == [Answer(), node("route", "branch"), StartTimer("t-1", 1.5)]
    assert call.feed(CustomerData({"customer.tier": "vip"})) == [CancelTimer("t-1"), node("vip", "transfer"),
                                                                 Transfer("vip")]


def test_branch_customer_wait_timeout_evaluates_as_unknown_caller(drive):
    call = drive(BRANCH, caller="+33123456789")
    call.start()
    assert call.timeout()[:2] == [node("france", "transfer"), Transfer("france")]


def test_customer_data_before_the_branch_means_no_wait(drive):
    call = drive("""
        flow: t
        entry: hello
        nodes:
          hello: {type: play, prompt: sound:beep, next: route}
          route:
            type: branch
            rules: [{when: {var: customer.tier, eq: vip}, goto: vip}]
            default: other
          vip: {type: transfer, destination: vip}
          other: {type: transfer, destination: other}
    """)
    call.start()
    assert call.feed(CustomerData({"tier": "standard"})) == []
    assert call.played() == [node("route", "branch"), node("other", "transfer"), Transfer("other")]


def test_no_crm_means_branches_never_wait(drive):
    call = drive(BRANCH, customer_lookup=False)
    assert call.start()[-1:] == [Transfer("other")]


def test_digits_typed_while_waiting_for_the_crm_reach_the_next_menu(drive):
    call = drive("""
        flow: t
        entry: route
        nodes:
          route:
            type: branch
            rules: [{when: {var: customer.tier, eq: vip}, goto: vip}]
            default: menu
          menu: {type: menu, prompt: sound:vm-press, options: {"3": three}, on_timeout: vip}
          vip: {type: transfer, destination: vip}
          three: {type: transfer, destination: three}
    """)
    call.start()
    assert call.press("3") == []
    assert call.timeout() == [node("menu", "menu"), node("three", "transfer"), Transfer("three")]


# -- set ----------------------------------------------------------------------------------


def test_set_variables_and_language_selects_prompt_variants(drive):
    call = drive("""
        flow: t
        entry: lang
        language: en
        nodes:
          lang: {type: set, variables: {language: fr_CA, origin: "from-{caller}"}, next: hello}
          hello:
            type: play
            prompt: [{en: sound:hello-world, fr: sound:fr/hello-world}, "digits:{missing}", sound:beep]
            next: bye
          bye: {type: hangup}
    """, caller="5551234")
    assert call.start() == [Answer(), node("lang", "set"), SetLanguage("fr_CA"), node("hello", "play"),
                            Play("pb-1", ("sound:fr/hello-world", "sound:beep"), False)]
    assert call.runner.language == "fr_CA"
    assert call.runner.variables["origin"] == "from-5551234"


def test_template_values_are_never_injected_into_media(drive):
    call = drive("""
        flow: t
        entry: hello
        nodes:
          hello: {type: play, prompt: ["digits:{customer.account_id}", "sound:{customer.name}"], next: bye}
          bye: {type: hangup}
    """, customer_lookup=False)
    call.runner._merge_customer({"account_id": "42", "name": "x,sound:../../secret"})
    assert call.start()[-1] == Play("pb-1", ("digits:42",), False)


# -- queue --------------------------------------------------------------------------------

QUEUE = """
flow: t
entry: q
nodes:
  q:
    type: queue
    queue: billing
    required_skills: {billing: 2}
    optional_skills: {french: 1}
    priority: 4
    max_wait: 60
    on_timeout: vm
    on_no_agents: vm
  vm: {type: transfer, destination: vm}
"""


@pytest.mark.parametrize("outcome, expected", [
    ("answered", [Hangup("normal"), FlowEnded("queue_answered")]),
    ("timeout", [node("vm", "transfer"), Transfer("vm")]),
    ("no_agents", [node("vm", "transfer"), Transfer("vm")]),
    ("full", [Play("pb-1", ("sound:vm-goodbye",), False)]),
    ("abandoned", [FlowEnded("queue_abandoned")]),
])
def test_queue_outcomes(drive, outcome, expected):
    call = drive(QUEUE, language="de")
    assert call.start() == [Answer(), node("q", "queue"),
                            Enqueue("billing", (("billing", 2),), (("french", 1),), 4, 60.0, "de")]
    assert call.press("1") == []
    assert call.feed(QueueResult(outcome)) == expected
    assert f"queue billing {outcome}" in [str(s) for s in call.runner.path]


def test_queue_result_nobody_waits_for_is_ignored(drive):
    call = drive(PLAY)
    call.start()
    assert call.feed(QueueResult("answered")) == []
    assert call.feed(RecordingFinished("vm-x", 3)) == []


# -- voicemail, callback, goto, hangup ----------------------------------------------------

VOICEMAIL = """
flow: t
entry: vm
nodes:
  vm: {type: voicemail, mailbox: support, prompt: sound:vm-intro, max_seconds: 90, next: bye}
  bye: {type: hangup, prompt: sound:vm-goodbye, reason: normal}
"""
NOON = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def test_voicemail_records_then_stores(drive):
    call = drive(VOICEMAIL, channel_id="1700000000.42", caller="+15550199", at=NOON)
    assert call.start()[-1] == Play("pb-1", ("sound:vm-intro",), False)
    assert call.press("1") == []
    assert call.played() == [Record("vm-1700000000.42-1", 90, True, "#")]
    assert call.feed(RecordingFinished("other", 4)) == []
    assert call.feed(RecordingFinished("vm-1700000000.42-1", 12.5)) == [
        StoreVoicemail("support", "vm-1700000000.42-1", 12.5, NOON, "+15550199"),
        node("bye", "hangup"), Play("pb-2", ("sound:vm-goodbye",), False)]


def test_voicemail_hangup_while_recording_still_stores_the_message(drive):
    call = drive(VOICEMAIL, at=NOON)
    call.start()
    call.played()
    assert call.feed(HungUp()) == [FlowEnded("caller_hangup")]
    assert call.runner.finished and call.runner.waiting_for == "recording"
    assert call.feed(RecordingFinished("vm-chan-1-1", 7)) == [
        StoreVoicemail("support", "vm-chan-1-1", 7, NOON, "+15550100")]
    assert call.feed(RecordingFinished("vm-chan-1-1", 7)) == []
    assert call.runner.waiting_for == "nothing"


@pytest.mark.parametrize("duration", [0, 0.4, 0.99])
def test_a_recording_shorter_than_a_second_is_no_message(drive, duration):
    call = drive(VOICEMAIL, at=NOON)
    call.start()
    call.press("1")
    call.played()
    assert call.feed(RecordingFinished("vm-chan-1-1", duration)) == [
        DiscardRecording("vm-chan-1-1", duration), node("bye", "hangup"), Play("pb-2", ("sound:vm-goodbye",), False)]
    assert ("voicemail", "support (empty)") in [(s.kind, s.detail) for s in call.runner.path]
    # hung up at the tone: the same after the end
    call = drive(VOICEMAIL, at=NOON)
    call.start()
    call.played()
    call.feed(HungUp())
    assert call.feed(RecordingFinished("vm-chan-1-1", duration)) == [DiscardRecording("vm-chan-1-1", duration)]
    assert call.feed(RecordingFinished("vm-chan-1-1", 1.0)) == []


def test_callback_uses_the_caller_or_a_collected_number(drive):
    flow = """
        flow: t
        entry: cb
        nodes:
          cb: {type: callback, queue: sales, next: bye}
          bye: {type: hangup}
    """
    call = drive(flow, caller="+15550123", at=NOON)
    assert call.start()[2:4] == [RequestCallback("sales", NOON, "+15550123"), node("bye", "hangup")]

    call = drive("""
        flow: t
        entry: ask
        nodes:
          ask: {type: collect, variable: number, min_length: 3, next: cb}
          cb: {type: callback, queue: sales, variable: number}
    """, caller="", at=NOON)
    call.start()
    assert call.type("5551234#")[-3:] == [node("cb", "callback"), RequestCallback("sales", NOON, "5551234"),
                                          Play("pb-1", ("sound:vm-goodbye",), False)]
    # No `next`: polite goodbye.
    assert call.runner.waiting_for == "playback"


def test_goto_another_flow_starts_at_its_entry(drive):
    call = drive("""
        flow: main
        entry: jump
        nodes:
          jump: {type: goto, flow: common}
    """, """
        flow: common
        entry: hello
        language: fr
        nodes:
          hello: {type: play, prompt: {en: sound:hello-world, fr: sound:fr/hello-world}, next: bye}
          bye: {type: hangup, reason: busy}
    """)
    assert call.start() == [Answer(), node("jump", "goto", "main"), node("hello", "play", "common"),
                            Play("pb-1", ("sound:fr/hello-world",), False)]
    assert call.played() == [node("bye", "hangup", "common"), Hangup("busy"), FlowEnded("hangup")]
    assert call.runner.visited_nodes == ("main:jump", "common:hello", "common:bye")


# -- stale events, hangup, errors ---------------------------------------------------------


def test_stale_playback_and_timer_events_are_ignored(drive):
    call = drive(MENU)
    call.start()
    call.played()                                   # pb-1 done, t-1 running
    assert call.feed(PlaybackFinished("pb-1")) == []
    assert call.feed(TimerFired("t-0")) == []
    call.press("9")                                  # t-1 cancelled, pb-2 playing
    assert call.feed(TimerFired("t-1")) == []
    assert call.press("9")[0] == StopPlayback("pb-2")
    assert call.feed(PlaybackFinished("pb-2")) == []  # the stopped one reports later: stale
    assert call.runner.active_playback == "pb-3"


@pytest.mark.parametrize("steps, expected", [
    (0, [FlowEnded("caller_hangup")]),                      # during the prompt
    (1, [CancelTimer("t-1"), FlowEnded("caller_hangup")]),  # waiting for a key
])
def test_hangup_ends_cleanly_and_cancels_the_timer(drive, steps, expected):
    call = drive(MENU)
    call.start()
    if steps:
        call.played()
    assert call.feed(HungUp()) == expected
    assert call.runner.finished and call.runner.end_reason == "caller_hangup"
    for event in (DigitReceived("1"), PlaybackFinished("pb-1"), TimerFired("t-1"), HungUp(),
                  QueueResult("answered"), CustomerData({"tier": "vip"})):
        assert call.feed(event) == []


def test_events_before_start_and_double_start_are_errors(drive):
    call = drive(PLAY)
    with pytest.raises(RuntimeError):
        call.feed(HungUp())
    call.start()
    with pytest.raises(RuntimeError):
        call.start()


def test_unknown_flow_and_bad_event_values():
    from ivr.flow import CallInfo, FlowRunner, FlowSet
    with pytest.raises(KeyError):
        FlowRunner(FlowSet({}), "nope", CallInfo("c"), lambda: NOON)
    with pytest.raises(ValueError):
        DigitReceived("12")
    with pytest.raises(ValueError):
        QueueResult("lost")


def test_loop_guard_hangs_up_a_flowset_that_bypassed_validation():
    from ivr.flow import CallInfo, FlowRunner, FlowSet
    from ivr.flow.model import Flow, GotoNode
    flow = Flow(name="t", entry="a", nodes={"a": GotoNode(name="a", target="b"), "b": GotoNode(name="b", target="a")})
    runner = FlowRunner(FlowSet({"t": flow}), "t", CallInfo("c"), lambda: NOON)
    assert runner.start()[-2:] == [Hangup("normal"), FlowEnded("loop_guard")]


def test_a_running_call_keeps_its_flow_set_when_flows_are_reloaded():
    from ivr.flow import CallInfo, FlowRunner, load_flow_sources
    old, _ = load_flow_sources([("t.yaml", PLAY)])
    new, _ = load_flow_sources([("t.yaml", PLAY.replace("sound:beep", "sound:demo-thanks"))])
    assert old.version != new.version
    runner = FlowRunner(old, "t", CallInfo("c"), lambda: NOON)
    assert runner.start()[-1] == Play("pb-1", ("sound:hello-world", "sound:beep"), False)
    assert FlowRunner(new, "t", CallInfo("d"), lambda: NOON).start()[-1].media[-1] == "sound:demo-thanks"
