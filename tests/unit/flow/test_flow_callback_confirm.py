"""The callback node with `confirm: true`: "the number ending 1234: press 1 if correct, 2 to enter
another"; a typed number is confirmed the same way; no answer or no usable number ends at on_failure with
nothing requested; a phone number never appears in the path."""

from __future__ import annotations

from ivr.flow.protocol import Play, RequestCallback

FLOW = """
    flow: t
    entry: cb
    nodes:
      cb: {type: callback, queue: sales, confirm: true, next: bye, on_failure: sorry}
      bye: {type: hangup, prompt: sound:vm-goodbye}
      sorry: {type: hangup, prompt: sound:vm-nonumber}
"""


def requests(cmds) -> list[RequestCallback]:
    return [c for c in cmds if isinstance(c, RequestCallback)]


def plays(cmds) -> list[tuple[str, ...]]:
    return [c.media for c in cmds if isinstance(c, Play)]


def test_the_caller_confirms_the_number_ending_in_its_last_four_digits(drive):
    call = drive(FLOW, caller="+441632960123")
    out = call.start()
    assert requests(out) == []
    assert plays(out) == [("sound:telephone-number", "digits:0123", "sound:if-correct-press", "digits:1",
                           "sound:vm-press", "digits:2", "sound:vm-toenternumber")]
    call.played()
    out = call.press("1")
    assert [r.number for r in requests(out)] == ["+441632960123"] and requests(out)[0].queue == "sales"
    path = [str(p) for p in call.runner.path]
    assert path[path.index("key 1") + 1] == "callback sales"


def test_the_caller_types_another_number_and_confirms_it(drive):
    call = drive(FLOW, caller="+441632960123")
    call.start()
    call.press("2")                                           # barge-in: during the prompt
    assert plays(call.commands)[-1] == ("sound:vm-enter-num-to-call",)
    out = call.type("07700900456#")
    assert plays(out)[-1][:2] == ("sound:telephone-number", "digits:0456")
    out = call.press("1")
    assert [r.number for r in requests(out)] == ["07700900456"]
    path = " ".join(str(p) for p in call.runner.path)
    assert "07700900456" not in path and "0456" not in path and call.runner.keys_pressed == "21"


def test_a_withheld_number_asks_for_one_at_once(drive):
    call = drive(FLOW, caller="anonymous")
    assert plays(call.start()) == [("sound:vm-enter-num-to-call",)]
    call.played()
    call.type("020794600")
    out = call.timeout()                                      # the inter-digit timeout ends the number too
    assert plays(out)[-1][1] == "digits:4600"


def test_no_answer_or_junk_ends_at_on_failure_with_nothing_requested(drive):
    call = drive(FLOW, caller="+441632960123")
    call.start()
    call.played()
    call.timeout()                                            # 1: nothing pressed -> asked again
    call.played()
    call.press("7")                                           # 2: a wrong key -> asked again
    call.played()
    out = call.timeout()                                      # 3: gives up
    assert requests(call.commands) == []
    assert plays(out)[-1] == ("sound:vm-nonumber",)
    assert "callback sales not confirmed" in [str(p) for p in call.runner.path]


def test_a_too_short_typed_number_is_refused_and_asked_again(drive):
    call = drive(FLOW, caller="")
    call.start()
    call.played()
    out = call.type("123#")
    assert plays(out)[-1] == ("sound:pbx-invalid", "sound:vm-enter-num-to-call")
    assert requests(call.commands) == []


def test_without_confirm_the_node_requests_at_once(drive):
    call = drive(FLOW.replace("confirm: true, ", ""), caller="+441632960123")
    assert [r.number for r in requests(call.start())] == ["+441632960123"]
