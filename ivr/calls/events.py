"""Typed internal events: timers, CRM answers, queue and transfer outcomes, task wake-ups.

They go through the same per-key dispatcher as ARI events (``ivr.ari.dispatch``), so everything that
happens to one call is handled in one order, one at a time. ``key`` is the dispatch key: a caller's
channel id, an agent leg's id, or a fixed key for work that belongs to no call (``ACD_KEY``,
``TASKS_KEY``). Each event names exactly what happened; handlers match on the class, never on a tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ari import Event

ACD_KEY = "_acd"          # the router's timers (ring timeouts, relaxation steps, wrap-up ends)
TASKS_KEY = "_tasks"      # the book of durable tasks (release, expiry, pumping offers)


@dataclass(frozen=True)
class Internal(Event):
    """Base of every internal event; ``key`` decides which dispatch worker runs it."""

    type: str = "Internal"
    key: str = ""

    @property
    def channel_id(self) -> str | None:
        return self.key or None


# ------------------------------------------------------------------------------ a caller's flow
@dataclass(frozen=True)
class TimerDue(Internal):
    """A flow timer (``wait`` / input timeout) of the caller ``key`` fired."""

    timer_id: str = ""


@dataclass(frozen=True)
class CrmAnswered(Internal):
    """The CRM lookup for the caller ``key`` finished (``result``: ``ivr.crm.LookupResult``)."""

    result: Any = None


@dataclass(frozen=True)
class QueueDone(Internal):
    """The caller ``key`` left the ACD; ``outcome`` is the flow's queue result (``answered``, ``timeout``,
    ``no_agents``, ``full``)."""

    outcome: str = ""


@dataclass(frozen=True)
class TransferDone(Internal):
    """The transfer of the caller ``key`` ended: answered, busy, no_answer or failed."""

    outcome: str = ""


@dataclass(frozen=True)
class TransferLegEvent(Internal):
    """An ARI event (start / end) of a transfer leg, re-keyed to the call that owns the leg."""

    event: Event | None = None


@dataclass(frozen=True)
class TransferTimeout(Internal):
    """The ring timer of the transfer leg ``leg`` expired."""

    leg: str = ""


# --------------------------------------------------------------------------------------- ACD
@dataclass(frozen=True)
class AcdTick(Internal):
    """One of the router's deadlines is due (``ACD_KEY``)."""

    key: str = ACD_KEY


@dataclass(frozen=True)
class AnnounceDue(Internal):
    """Time for the waiting caller ``key``'s next position / hold-time announcement."""


@dataclass(frozen=True)
class MusicDue(Internal):
    """The caller ``key`` has waited ``MUSIC_DELAY`` with an agent's phone ringing: its music starts."""


@dataclass(frozen=True)
class MaxWaitDue(Internal):
    """The queue node's own ``max_wait`` for the caller ``key`` is reached."""


@dataclass(frozen=True)
class OfferCheckDue(Internal):
    """Look again for the agent leg ``leg`` whose originate timed out (the caller is ``key``)."""

    leg: str = ""


# ------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TasksWake(Internal):
    """Something may be due in the task book: release scheduled tasks, expire windows, offer."""

    key: str = TASKS_KEY


@dataclass(frozen=True)
class HangupLegDue(Internal):
    """Hang up ``leg`` (a task's agent leg that may have been created after its originate timed out)."""

    key: str = TASKS_KEY
    leg: str = ""


@dataclass(frozen=True)
class TaskActionChosen(Internal):
    """The agent on leg ``key`` chose ``action`` (``call_back`` / ``close``) for the task it works."""

    action: str = ""
    disposition: str | None = None


@dataclass(frozen=True)
class CustomerDialled(Internal):
    """The customer leg of the task worked on agent leg ``key`` ended its attempt with ``outcome``."""

    outcome: str = ""
