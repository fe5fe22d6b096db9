"""Property tests: random event sequences on the sample flows never break the engine's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.flow import (
    CallInfo,
    CancelTimer,
    CustomerData,
    DigitReceived,
    DiscardRecording,
    FlowEnded,
    FlowRunner,
    Hangup,
    HungUp,
    Play,
    PlaybackFinished,
    QueueResult,
    RecordingFinished,
    StartTimer,
    StopPlayback,
    StoreVoicemail,
    TimerFired,
    load_flow_dir,
)

FLOWS = Path(__file__).resolve().parents[3] / "flows"
SAMPLES, _ = load_flow_dir(FLOWS)

ACTIONS = (
    [f"digit {d}" for d in "0123456789*#"]
    + ["played"] * 6 + ["timer"] * 4
    + ["stale played", "stale timer", "recorded", "stale recorded", "customer vip", "customer none", "hangup"]
    + [f"queue {o}" for o in ("answered", "timeout", "no_agents", "full", "abandoned")]
)


def event_for(action: str, runner: FlowRunner):
    kind, _, arg = action.partition(" ")
    if kind == "digit":
        return DigitReceived(arg)
    if action == "played":
        return PlaybackFinished(runner.active_playback or "pb-0")
    if action == "timer":
        return TimerFired(runner.active_timer or "t-0")
    if action == "stale played":
        return PlaybackFinished("pb-999")
    if action == "stale timer":
        return TimerFired("t-999")
    if action == "recorded":
        return RecordingFinished(runner.recording_name or "vm-x", 4.0)
    if action == "stale recorded":
        return RecordingFinished("vm-other", 4.0)
    if action == "customer vip":
        return CustomerData({"customer.tier": "vip", "customer.open_tickets": 1})
    if action == "customer none":
        return CustomerData({})
    if action == "hangup":
        return HungUp()
    return QueueResult(arg)


class Invariants:
    """Tracks what the session would hold (one timer, one playback) and checks each command."""

    def __init__(self) -> None:
        self.timer: str | None = None
        self.playback: str | None = None
        self.ended = False
        self.hangups = 0

    def event(self, event) -> None:
        if isinstance(event, TimerFired) and event.timer_id == self.timer:
            self.timer = None
        if isinstance(event, PlaybackFinished) and event.playback_id == self.playback:
            self.playback = None
        if isinstance(event, HungUp):
            self.playback = None

    def commands(self, commands) -> None:
        for command in commands:
            if self.ended:
                assert isinstance(command, (StoreVoicemail, DiscardRecording)), f"{command} after the end"
                continue
            if isinstance(command, StartTimer):
                assert self.timer is None, "two timers at once"
                self.timer = command.timer_id
            elif isinstance(command, CancelTimer):
                assert command.timer_id == self.timer, "cancelling a timer that is not running"
                self.timer = None
            elif isinstance(command, Play):
                assert self.playback is None, "two playbacks at once"
                self.playback = command.playback_id
            elif isinstance(command, StopPlayback):
                assert command.playback_id == self.playback, "stopping a playback that is not playing"
                self.playback = None
            elif isinstance(command, Hangup):
                self.hangups += 1
            elif isinstance(command, FlowEnded):
                self.ended = True
                assert self.timer is None, "flow ended with a timer running"


@settings(max_examples=150, deadline=None)
@given(
    flow=st.sampled_from(["support", "sales"]),
    minutes=st.integers(0, 7 * 24 * 60),
    actions=st.lists(st.sampled_from(ACTIONS), max_size=60),
)
def test_random_calls_keep_the_engine_invariants(flow, minutes, actions):
    at = datetime(2025, 3, 3, tzinfo=UTC) + timedelta(minutes=minutes)
    runner = FlowRunner(SAMPLES, flow, CallInfo("c1", caller="+15550100"), lambda: at)
    check = Invariants()
    check.commands(runner.start())
    for action in actions:
        event = event_for(action, runner)
        secure_before = runner.input_is_secure
        steps_before = len(runner.path)
        check.event(event)
        check.commands(runner.feed(event))
        new_steps = runner.path[steps_before:]
        if secure_before:
            assert not [s for s in new_steps if s.kind == "key"], "a secure digit reached the path"
        assert runner.active_timer == check.timer
        assert runner.active_playback == check.playback
        assert runner.finished == check.ended
    assert check.hangups <= 1
    for step in runner.path:
        if step.kind == "input" and step.detail.startswith("card_pin="):
            assert step.detail == "card_pin=***"
    if runner.finished:
        # the only step allowed after the end: a voicemail whose recording finished after the caller
        # hung up (hanging up is the normal way to end a message; see the engine's docstring)
        kinds = [s.kind for s in runner.path]
        assert kinds[-1] == "end" or kinds[-2:] == ["end", "voicemail"]
        assert [s.kind for s in runner.path].count("end") == 1


# -- the loader never raises, whatever it is given ------------------------------------------------

KEYS = ["flow", "entry", "nodes", "type", "prompt", "next", "options", "rules", "when", "goto", "var", "eq",
        "schedule", "schedules", "hours", "holidays", "date", "timezone", "variable", "pattern", "queue",
        "required_skills", "all", "not", "in", "variables", "1", "*", "mon-fri", "a", "b"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=True),
                    st.sampled_from(["sound:beep", "a", "b", "menu", "play", "branch", "collect", "08:00-18:00",
                                     "Europe/Paris", "[0-9", "{x", "digits:{a}", "12-25", "closed", ""]),
                    st.text(max_size=8))
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(document=DOCUMENTS)
def test_loader_reports_instead_of_raising_on_any_structure(document):
    import yaml

    from ivr.flow import load_flow_text
    flow, diagnostics = load_flow_text(yaml.safe_dump(document), "fuzz.yaml")
    assert (flow is None) == any(d.is_error for d in diagnostics)
    assert all(d.line >= 1 and d.col >= 1 for d in diagnostics)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_loader_reports_instead_of_raising_on_any_text(text):
    from ivr.flow import load_flow_text
    flow, diagnostics = load_flow_text(text, "fuzz.yaml")
    assert flow is None and diagnostics


SUPPORT_DOCUMENT = __import__("yaml").safe_load((FLOWS / "support.yaml").read_text())


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_loader_reports_instead_of_raising_on_a_damaged_sample(data):
    import copy

    import yaml

    from ivr.flow import load_flow_text
    document = copy.deepcopy(SUPPORT_DOCUMENT)
    # Walk down a random path of the sample and replace what is there.
    parent, key = None, None
    node = document
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, data.draw(st.sampled_from(keys))
        node = node[key]
    if parent is None:
        return
    parent[key] = data.draw(DOCUMENTS)
    flow, diagnostics = load_flow_text(yaml.safe_dump(document), "damaged.yaml")
    assert (flow is None) == any(d.is_error for d in diagnostics)
