"""What the ACD holds for a caller in queue: the caller's side (``QueueMember``, a flow session or a call
adopted after a restart) and the ACD's own record of its stay (``QueuedCall``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..ari import Channel
from .clock import Cancellable
from .saved_state import QueueState


class QueueMember(Protocol):
    """The caller's side of a queue stay, as the ACD sees it.

    The ACD reads who the caller is (for the agent's caller ID, the screen pop and the records), writes
    what the flow reads after the stay (``agent_id``, ``queue_wait``, ``outcome``, ``queue_name``) and
    hands the stay's end back with ``queue_outcome`` (answered, timeout, no_agents, full)."""

    channel_id: str
    channel: Channel
    caller_raw: str
    e164: str | None
    did: str
    flow_name: str
    hints: Any                      # ``ivr.crm.RoutingHints`` or None
    closed: bool
    agent_id: str | None
    queue_wait: float
    outcome: str
    queue_name: str | None

    def customer_name(self) -> str: ...

    def screen_pop(self) -> dict[str, Any]: ...

    def queue_outcome(self, outcome: str) -> None: ...


@dataclass
class QueuedCall:
    """One caller's stay in the ACD (``AcdService`` is its only writer)."""

    session: QueueMember
    call_id: str
    queue: str
    entered: float
    refused: bool = False
    leg_id: str | None = None          # the agent leg currently ringing / talking
    agent_id: str | None = None
    bridge_id: str | None = None
    answered: bool = False
    moh: bool = False
    announce: Cancellable | None = None
    music_due: Cancellable | None = None   # music that starts only if nobody answered by then
    max_wait: Cancellable | None = None
    announcement_id: str | None = None
    log: Any = None
    legs_tried: list[str] = field(default_factory=list)
    caller_hung_up: bool = False       # we hung the caller up: nothing goes back to its flow
    saved: QueueState | None = None    # what a restarted app needs to queue it again (the queue follows moves)
    persisted: bool = False            # its channel carries ``saved`` (``IVR_ACD``); until then the ringing
                                       # agent leg does (``acd_service._save``)

    def cancel_timers(self) -> None:
        for h in (self.announce, self.max_wait, self.music_due):
            if h is not None:
                h.cancel()
