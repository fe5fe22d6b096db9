from ivr.ari import (
    ChannelDtmfReceived,
    ContactStatusChange,
    Event,
    PlaybackFinished,
    StasisStart,
    dispatch_key,
)
from ivr.ari.models import parse_event


def test_stasis_start_is_typed_and_keeps_unknown_fields():
    raw = {"type": "StasisStart", "application": "ivr", "args": ["inbound"], "future_field": {"x": 1},
           "channel": {"id": "c1", "name": "PJSIP/caller-1", "state": "Ring", "caller": {"number": "555"},
                       "dialplan": {"context": "from-caller", "exten": "100", "priority": 1}, "new": 2}}
    ev = parse_event(raw)
    assert isinstance(ev, StasisStart)
    assert ev.args == ("inbound",) and ev.channel.exten == "100" and ev.channel.caller.number == "555"
    assert ev.raw["future_field"] == {"x": 1} and ev.channel.raw["new"] == 2
    assert dispatch_key(ev) == "c1"


def test_unknown_event_type_parses_to_generic_event_with_everything_kept():
    ev = parse_event({"type": "BrandNewThing", "application": "ivr", "payload": [1, 2]})
    assert type(ev) is Event and ev.type == "BrandNewThing" and ev.raw["payload"] == [1, 2]
    assert dispatch_key(ev) == "_app"


def test_odd_field_types_never_crash_parsing():
    assert parse_event({"type": "ChannelDtmfReceived", "channel": "not-a-dict", "digit": 5}).type == \
        "ChannelDtmfReceived"
    assert parse_event({"type": "ChannelDestroyed", "cause": "x"}).type == "ChannelDestroyed"
    assert parse_event(["not", "a", "dict"]).type == "Invalid"
    assert parse_event({}).type == ""


def test_playback_events_dispatch_on_their_channel():
    ev = parse_event({"type": "PlaybackFinished", "playback": {"id": "p1", "target_uri": "channel:c9"}})
    assert isinstance(ev, PlaybackFinished) and dispatch_key(ev) == "c9"
    ev = parse_event({"type": "PlaybackFinished", "playback": {"id": "p2", "target_uri": "bridge:b1"}})
    assert dispatch_key(ev) == "_app"


def test_dtmf_and_presence_events():
    ev = parse_event({"type": "ChannelDtmfReceived", "digit": "#", "duration_ms": 120, "channel": {"id": "c2"}})
    assert isinstance(ev, ChannelDtmfReceived) and ev.digit == "#" and ev.duration_ms == 120
    ev = parse_event({"type": "ContactStatusChange", "endpoint": {"technology": "PJSIP", "resource": "agent1"},
                      "contact_info": {"contact_status": "Reachable", "aor": "agent1"}})
    assert isinstance(ev, ContactStatusChange) and ev.contact_status == "Reachable"
    assert dispatch_key(ev) == "endpoint:PJSIP/agent1"
