"""The ARI event filter asks Asterisk for exactly the event types some handler of the app uses."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.app import EVENT_TYPES

IVR = Path(__file__).resolve().parents[2] / "ivr"


def test_every_requested_event_type_is_handled_somewhere_and_no_chatty_type_is_requested():
    source = "\n".join(p.read_text(encoding="utf-8") for p in IVR.rglob("*.py")
                       if p.name not in ("models.py", "__init__.py") and p.parent.name != "sim")
    for t in EVENT_TYPES:
        assert re.search(rf"isinstance\(ev, \(?[\w, ]*\b{t}\b", source), f"no handler tests for {t}"
    # ChannelHangupRequest is requested although it is one more event per channel that hangs up: it is the
    # only one that arrives before a hung-up channel's playback ends (then its StasisEnd), and without it a
    # caller who hung up during a prompt went on in the flow and rang an agent (tests/component)
    for chatty in ("ChannelVarset", "ChannelStateChange", "Dial", "ChannelEnteredBridge", "ChannelLeftBridge",
                   "PlaybackStarted"):
        assert chatty not in EVENT_TYPES
