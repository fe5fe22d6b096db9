"""The ids the app gives what it creates on Asterisk, so that a restarted app (adoption) and the janitor
recognise them: the agent leg ``<caller channel id>-a<n>`` and the conversation bridge ``call-<caller>``."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator

AGENT_LEG = re.compile(r"^(?P<call>.+)-a\d+$")
#: a leg the app dials from a call: a flow's transfer target ``<caller>-t<n>``, a task's customer
#: ``<task>-a<n>-t<m>``
DIALLED_LEG = re.compile(r"^(?P<call>.+)-t\d+$")
BRIDGE_PREFIX = "call-"


def sequence() -> Iterator[int]:
    """Numbers for the ``<n>`` of the ids above (agent legs, dialled legs, playbacks). Each process starts at a
    random point: a restarted app adopts the calls of the one before it, whose legs and playbacks may still
    exist on Asterisk, so counting from 1 again would give an adopted call's new leg the id of its old one
    (Asterisk refuses a second channel with an id in use)."""
    return itertools.count(random.SystemRandom().randrange(1, 2**31))


def bridge_id(call_id: str) -> str:
    return BRIDGE_PREFIX + call_id


def call_of_bridge(bridge: str) -> str | None:
    """'call-X' -> 'X'; None for a bridge that is not a conversation of ours."""
    return bridge[len(BRIDGE_PREFIX):] if bridge.startswith(BRIDGE_PREFIX) else None
