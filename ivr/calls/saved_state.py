"""What a queued call leaves on Asterisk so that a new process of the app can take it over (see
``adoption``): the channel variable ``IVR_ACD`` with the caller's queue state (on the caller once it waits,
on the agent leg that rings for it until then), and the names that tie an agent leg to its endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

QUEUE_VAR = "IVR_ACD"
_MAX_VAR = 1024     # what we write is ~100 bytes; anything longer is not ours


@dataclass(frozen=True)
class QueueState:
    """What a queued caller carries on its channel so that a new app process can take it over."""

    queue: str
    joined_at: float                  # wall clock (epoch seconds): monotonic clocks do not survive reboots
    priority: int = 0
    extra_skills: dict[str, int] = field(default_factory=dict)
    name: str = ""                    # the customer's name (the agent's caller ID and screen pop)
    flow: str = ""
    did: str = ""
    optional_skills: dict[str, float] = field(default_factory=dict)   # the flow's, for agent ranking

    def encode(self) -> str:
        d = {"q": self.queue, "t": round(self.joined_at, 3), "p": self.priority, "x": self.extra_skills,
             "n": self.name[:80], "f": self.flow, "d": self.did}
        if self.optional_skills:
            d["o"] = self.optional_skills
        return json.dumps(d, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def decode(cls, raw: str | None) -> QueueState | None:
        """None for anything that is not a well-formed state of ours (never raises)."""
        if not raw or len(raw) > _MAX_VAR:
            return None
        try:
            d = json.loads(raw)
            queue, joined = d["q"], d["t"]
            extra = {str(k): int(v) for k, v in (d.get("x") or {}).items()}
            optional = {str(k): float(v) for k, v in (d.get("o") or {}).items()}
            if not isinstance(queue, str) or not queue or isinstance(joined, bool) \
                    or not isinstance(joined, (int, float)):
                return None
            return cls(queue, float(joined), int(d.get("p") or 0), extra, str(d.get("n") or ""),
                       str(d.get("f") or ""), str(d.get("d") or ""), optional)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def agent_endpoint_of(channel_name: str) -> str:
    """'PJSIP/agent1-0000002a' -> 'PJSIP/agent1' (the endpoint an agent leg was dialled on)."""
    return channel_name.rsplit("-", 1)[0] if "-" in channel_name else channel_name


def parse_ari_time(value: Any) -> float | None:
    """ARI timestamps ('2026-11-23T06:50:00.123+0000') -> epoch seconds."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None
