"""Typed data carried between the CRM backends, the call session and the flow engine.

What it is for: ``Customer`` (who is calling), ``Interaction`` (one call, for the
history), ``LookupResult`` (what a lookup found, how, how fast) and the flat
``customer.*`` variables flow conditions branch on.

Pure module: it must not import asyncio, aiohttp or sqlite3. Phone numbers are
kept out of ``repr()`` so that logging one of these objects by accident does not
leak personal data.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "CLOSED_TICKET_STATUSES",
    "UNKNOWN_FLOW_VARS",
    "Customer",
    "FlowValue",
    "Interaction",
    "InteractionKind",
    "LookupResult",
    "LookupStatus",
    "Ticket",
    "clean_text",
]

FlowValue = str | int | float | bool

# Ticket statuses that do not count as "open" (compared lower-case).
CLOSED_TICKET_STATUSES = frozenset({"closed", "resolved", "done", "cancelled", "canceled"})


# Longest text kept per field: a CRM's 10 MB "name" must not reach a screen, a log or a SIP header whole.
MAX_TEXT = 256
MAX_NOTES = 4000

# Bidirectional formatting characters: invisible, and able to make "evil.exe" read "exe.live" on the agent's
# screen or in a phone's caller-ID display ("trojan source"). Never meaningful in a customer record.
_BIDI = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_SPACES = re.compile(r"[ \t]+")


def clean_text(value: str, *, limit: int = MAX_TEXT, multiline: bool = False) -> str:
    """``value`` safe to show and to pass on: control characters (C0, C1, DEL, CR/LF, U+2028/9) become spaces,
    or line breaks when ``multiline``; bidi overrides are dropped; runs of spaces collapse; at most ``limit``
    characters. Printable text of any script, emoji included, is unchanged."""
    if value.isprintable() and value.isascii() and value == value.strip() and "  " not in value:
        return value[:limit]                 # the common case, unchanged
    if multiline:
        value = value.replace("\r\n", "\n")
    out = []
    for ch in value.translate(_BIDI):
        cat = unicodedata.category(ch)
        if cat == "Cc" or cat in ("Zl", "Zp"):
            out.append("\n" if multiline and ch in "\n\r\x85\u2028\u2029" else " ")
        else:
            out.append(ch)
    text = "".join(out)
    if multiline:
        text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    else:
        text = " ".join(text.split())
    return text.strip()[:limit]


def _clean_opt(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # Copy, then wrap read-only: the dataclass is frozen, its contents should be too.
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class Ticket:
    """One support ticket on file (only id/subject/status: enough for the agent's screen)."""

    id: str
    subject: str = ""
    status: str = "open"

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", clean_text(str(self.id)))
        object.__setattr__(self, "subject", clean_text(str(self.subject)))
        object.__setattr__(self, "status", clean_text(str(self.status)))

    @property
    def is_open(self) -> bool:
        return self.status.strip().lower() not in CLOSED_TICKET_STATUSES

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "subject": self.subject, "status": self.status}


@dataclass(frozen=True)
class Customer:
    """A customer record as our code sees it, whatever the CRM calls the fields.

    ``tier`` is normally ``vip``, ``standard`` or ``legacy`` but any string is
    allowed (routing rules decide what a tier means). ``language`` is a language
    tag such as ``fr`` or ``fr-CA`` or None when not on file.
    """

    customer_id: str
    name: str = ""
    account_id: str | None = None
    # E.164 numbers; repr=False: never in logs.
    phones: tuple[str, ...] = field(default=(), repr=False)
    tier: str = "standard"
    language: str | None = None
    preferred_agent: str | None = None
    notes: str = field(default="", repr=False)
    open_tickets: tuple[Ticket, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Whatever the source (CRM JSON, CSV, an old database row), text is clean from here on: the name goes
        # to the agent's screen and into the SIP caller ID of the agent leg.
        for name in ("name", "tier", "account_id", "language", "preferred_agent"):
            object.__setattr__(self, name, _clean_opt(getattr(self, name)))
        if isinstance(self.notes, str):
            object.__setattr__(self, "notes", clean_text(self.notes, limit=MAX_NOTES, multiline=True))
        object.__setattr__(self, "phones", tuple(self.phones))
        object.__setattr__(self, "open_tickets", tuple(self.open_tickets))
        object.__setattr__(self, "extra", _frozen_mapping(self.extra))

    def as_flow_vars(self, *, repeat: bool = False, last_agent: str | None = None) -> dict[str, FlowValue]:
        """Flat ``customer.*`` variables for flow conditions (see ``UNKNOWN_FLOW_VARS``).

        The same keys are always present, known caller or not, so a condition on
        ``customer.tier`` never fails on a missing variable. Only scalar ``extra``
        values are exported, as ``customer.extra.<key>``.
        """
        out: dict[str, FlowValue] = dict(UNKNOWN_FLOW_VARS)
        out.update(
            {
                "customer.known": True,
                "customer.id": self.customer_id,
                "customer.account_id": self.account_id or "",
                "customer.name": self.name,
                "customer.tier": self.tier,
                "customer.language": self.language or "",
                "customer.preferred_agent": self.preferred_agent or "",
                "customer.open_tickets": len(self.open_tickets),
                "customer.repeat": bool(repeat),
                "customer.last_agent": last_agent or "",
            }
        )
        for key, value in self.extra.items():
            if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
                out[f"customer.extra.{key}"] = value
        return out


# Every variable a flow may test; values for an unknown caller.
UNKNOWN_FLOW_VARS: Mapping[str, FlowValue] = MappingProxyType(
    {
        "customer.known": False,
        "customer.id": "",
        "customer.account_id": "",
        "customer.name": "",
        "customer.tier": "",
        "customer.language": "",
        "customer.preferred_agent": "",
        "customer.open_tickets": 0,
        "customer.repeat": False,
        "customer.last_agent": "",
        "customer.lookup": "",
    }
)


class InteractionKind(StrEnum):
    """What an entry of the interaction history is. Only ``call`` entries are contacts: the repeat-caller
    flag, the last agent, first-contact resolution and the repeat-caller rate (``rules``) ignore the rest.

    ``task``: one transition of a task about the customer (a callback, a voicemail to return, a web callback
    request: requested, offered to an agent, connecting, done / failed / expired / cancelled), so the agent
    sees in the customer's history what happened to it."""

    CALL = "call"
    TASK = "task"


@dataclass(frozen=True)
class Interaction:
    """One call, or one step of a task (``kind``), as recorded in the interaction history.

    ``at`` is the call's arrival time in epoch seconds (UTC). ``ivr_path`` is the
    list of flow nodes visited and ``keys`` the DTMF the caller pressed; both
    arrive already redacted: the flow engine must never pass digits collected
    by a ``secure`` step (card numbers, PINs) — this module cannot tell them apart.
    ``caller`` is the E.164 number (None for withheld); a store fills it in from
    the number given to ``record_interaction``.

    A ``task`` entry (``InteractionKind.TASK``): ``call_id`` is the task id, ``outcome`` a short line for the
    agent's screen (``callback offered, attempt 1 of 3``), ``state`` the task's state after the step,
    ``attempt`` the customer attempt it belongs to and ``detail`` the step's reason.
    """

    at: float
    call_id: str = ""
    did: str = ""
    ivr_path: tuple[str, ...] = ()
    keys: str = ""
    queue: str | None = None
    wait_seconds: float = 0.0
    agent_id: str | None = None
    outcome: str = ""
    duration_seconds: float = 0.0
    customer_id: str | None = None
    caller: str | None = field(default=None, repr=False)
    kind: str = InteractionKind.CALL
    state: str = ""
    attempt: int = 0
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ivr_path", tuple(self.ivr_path))
        object.__setattr__(self, "kind", str(self.kind or InteractionKind.CALL))

    @property
    def is_call(self) -> bool:
        """A contact (a call), as opposed to a step of a task: what repeat-caller and FCR rules count."""
        return self.kind == InteractionKind.CALL

    @property
    def identity(self) -> str | None:
        """Who made the call, for repeat/FCR rules: the customer if known, else the number."""
        if self.customer_id:
            return "c:" + self.customer_id
        if self.caller:
            return "n:" + self.caller
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (used for the CRM history POST-back)."""
        return {
            "at": self.at,
            "call_id": self.call_id,
            "did": self.did,
            "ivr_path": list(self.ivr_path),
            "keys": self.keys,
            "queue": self.queue,
            "wait_seconds": self.wait_seconds,
            "agent_id": self.agent_id,
            "outcome": self.outcome,
            "duration_seconds": self.duration_seconds,
            "customer_id": self.customer_id,
            "caller": self.caller,
            "kind": str(self.kind),
            "state": self.state,
            "attempt": self.attempt,
            "detail": self.detail,
        }


class LookupStatus(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    ANONYMOUS = "anonymous"
    ERROR = "error"
    TIMEOUT = "timeout"
    CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True)
class LookupResult:
    """Outcome of one caller-ID lookup. Never carries an exception: failures are a status.

    ``source`` names the backend (``sqlite``, ``http``, ``http-cache``, ``guard``).
    ``latency`` is wall time of the lookup in seconds. ``repeat_caller`` and
    ``last_agent`` come from the interaction history, when the backend has one.
    """

    status: LookupStatus
    customer: Customer | None = None
    source: str = ""
    latency: float = 0.0
    repeat_caller: bool = False
    last_agent: str | None = None
    caller: str | None = field(default=None, repr=False)
    detail: str = ""  # short machine-friendly reason for failures ("http_503", "timeout"); never PII

    @property
    def found(self) -> bool:
        return self.status is LookupStatus.FOUND and self.customer is not None

    @property
    def failed(self) -> bool:
        return self.status in (LookupStatus.ERROR, LookupStatus.TIMEOUT, LookupStatus.CIRCUIT_OPEN)

    def as_flow_vars(self) -> dict[str, FlowValue]:
        """``customer.*`` variables for the flow engine; ``customer.lookup`` is the status."""
        if self.customer is not None:
            out = self.customer.as_flow_vars(repeat=self.repeat_caller, last_agent=self.last_agent)
        else:
            out = dict(UNKNOWN_FLOW_VARS)
            out["customer.repeat"] = self.repeat_caller
            out["customer.last_agent"] = self.last_agent or ""
        out["customer.lookup"] = self.status.value
        return out
