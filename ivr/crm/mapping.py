"""Map a CRM's JSON document onto our ``Customer``, driven by configuration.

What it is for: every CRM names things differently (``data.attributes.tier``,
``result[0].vip_level`` ...). A ``CustomerMapping`` built from YAML says where
each field lives, as a dotted path (integer parts index lists), with defaults.

Rules, chosen so a sloppy CRM costs a field, not the call:

* ``record`` locates the customer object. Missing, ``null``, ``{}`` or ``[]``
  means *not found*; a non-empty list means its first element.
* ``customer_id`` is required inside a found record: missing or of a wrong
  type (not a string or integer) raises ``MappingError`` (-> lookup status
  ``error``), because an unidentifiable record is not a customer.
* Every other field falls back to its default when missing or of a wrong type,
  and the field name is reported in the warnings tuple (the adapter counts them).
* Strings are stripped and truncated; numbers are accepted where an id is
  expected; booleans never are.

Pure module: no asyncio, aiohttp or sqlite3.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ivr.crm.errors import CrmConfigError
from ivr.crm.model import Customer, Ticket
from ivr.crm.phone import normalize

__all__ = ["MISSING", "CustomerMapping", "FieldSpec", "MappingError", "TicketMapping", "get_path"]


class MappingError(ValueError):
    """The CRM answered with a document we cannot read as a customer."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_MAX_STR = 256
_MAX_NOTES = 2000
_MAX_TICKETS = 20
_MAX_PHONES = 20
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


def _split(path: str) -> tuple[str, ...]:
    if not isinstance(path, str):
        raise CrmConfigError(f"path must be a string, got {type(path).__name__}")
    path = path.strip()
    if path in ("", "."):
        return ()
    parts = tuple(path.split("."))
    if any(p == "" for p in parts):
        raise CrmConfigError(f"bad path {path!r}: empty component")
    return parts


def get_path(doc: Any, path: tuple[str, ...] | str) -> Any:
    """Follow a dotted path into nested dicts/lists; ``MISSING`` if any step is absent."""
    parts = _split(path) if isinstance(path, str) else path
    cur = doc
    for part in parts:
        if isinstance(cur, Mapping):
            if part not in cur:
                return MISSING
            cur = cur[part]
        elif isinstance(cur, list):
            try:
                idx = int(part)
            except ValueError:
                return MISSING
            if not -len(cur) <= idx < len(cur):
                return MISSING
            cur = cur[idx]
        else:
            return MISSING
    return cur


@dataclass(frozen=True, slots=True)
class FieldSpec:
    path: tuple[str, ...]
    default: Any = None

    @classmethod
    def parse(cls, name: str, value: Any, default: Any = None) -> FieldSpec:
        """``"a.b"`` or ``{path: "a.b", default: x}``."""
        if isinstance(value, str):
            return cls(_split(value), default)
        if isinstance(value, Mapping):
            unknown = set(value) - {"path", "default"}
            if unknown:
                raise CrmConfigError(
                    f"mapping.{name}: unknown key(s) {sorted(unknown)} (allowed: path, default)"
                )
            if "path" not in value:
                raise CrmConfigError(f"mapping.{name}: 'path' is required")
            return cls(_split(value["path"]), value.get("default", default))
        raise CrmConfigError(f"mapping.{name}: expected a dotted path string or {{path, default}}")


@dataclass(frozen=True, slots=True)
class TicketMapping:
    path: tuple[str, ...]
    id: tuple[str, ...] = ("id",)
    subject: tuple[str, ...] = ("subject",)
    status: tuple[str, ...] = ("status",)

    @classmethod
    def parse(cls, value: Any) -> TicketMapping:
        if isinstance(value, str):
            return cls(_split(value))
        if not isinstance(value, Mapping):
            raise CrmConfigError("mapping.tickets: expected a path or {path, id, subject, status}")
        unknown = set(value) - {"path", "id", "subject", "status"}
        if unknown:
            raise CrmConfigError(
                f"mapping.tickets: unknown key(s) {sorted(unknown)} (allowed: path, id, subject, status)"
            )
        if "path" not in value:
            raise CrmConfigError("mapping.tickets: 'path' is required")
        return cls(
            _split(value["path"]),
            _split(value.get("id", "id")),
            _split(value.get("subject", "subject")),
            _split(value.get("status", "status")),
        )


_STRING_FIELDS = ("account_id", "name", "tier", "language", "preferred_agent", "notes")
_ALLOWED_KEYS = frozenset({"record", "customer_id", "phones", "tickets", "extra", *_STRING_FIELDS})


def _as_text(value: Any, *, allow_number: bool, limit: int = _MAX_STR) -> str | None:
    """A clean string, or None when ``value`` has the wrong type."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip()[:limit]
    if allow_number and isinstance(value, int):
        return str(value)
    if allow_number and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


@dataclass(frozen=True)
class CustomerMapping:
    """Where each ``Customer`` field lives in the CRM's JSON answer."""

    record: tuple[str, ...] = ()
    customer_id: FieldSpec = FieldSpec(("id",))
    account_id: FieldSpec | None = None
    name: FieldSpec | None = FieldSpec(("name",), "")
    tier: FieldSpec | None = FieldSpec(("tier",), "standard")
    language: FieldSpec | None = FieldSpec(("language",))
    preferred_agent: FieldSpec | None = None
    notes: FieldSpec | None = None
    phones: FieldSpec | None = None
    tickets: TicketMapping | None = None
    extra: Mapping[str, FieldSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> CustomerMapping:
        """Build from the ``mapping:`` YAML section; unknown keys are errors."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise CrmConfigError("mapping: expected a mapping")
        unknown = set(d) - _ALLOWED_KEYS
        if unknown:
            raise CrmConfigError(
                f"mapping: unknown key(s) {sorted(unknown)} (allowed: {sorted(_ALLOWED_KEYS)})"
            )
        kwargs: dict[str, Any] = {}
        if "record" in d:
            kwargs["record"] = _split(d["record"] or "")
        if "customer_id" in d:
            kwargs["customer_id"] = FieldSpec.parse("customer_id", d["customer_id"])
        defaults = {"name": "", "tier": "standard"}
        for name in _STRING_FIELDS:
            if name in d:
                kwargs[name] = None if d[name] is None else FieldSpec.parse(name, d[name], defaults.get(name))
        if "phones" in d:
            kwargs["phones"] = None if d["phones"] is None else FieldSpec.parse("phones", d["phones"])
        if "tickets" in d:
            kwargs["tickets"] = None if d["tickets"] is None else TicketMapping.parse(d["tickets"])
        if "extra" in d:
            extra = d["extra"] or {}
            if not isinstance(extra, Mapping):
                raise CrmConfigError("mapping.extra: expected {name: path}")
            kwargs["extra"] = {str(k): FieldSpec.parse(f"extra.{k}", v) for k, v in extra.items()}
        return cls(**kwargs)

    def find_record(self, doc: Any) -> Any:
        """The customer object inside ``doc``, or None when the CRM says "no such customer"."""
        rec = get_path(doc, self.record)
        if rec is MISSING or rec is None:
            return None
        if isinstance(rec, list):
            if not rec:
                return None
            rec = rec[0]
        if isinstance(rec, Mapping) and not rec:
            return None
        if not isinstance(rec, Mapping):
            raise MappingError(f"record is a {type(rec).__name__}, expected an object")
        return rec

    def map(
        self, doc: Any, *, caller: str | None = None, default_region: str = "GB"
    ) -> tuple[Customer | None, tuple[str, ...]]:
        """Return ``(customer or None if not found, names of fields that fell back to defaults)``.

        Raises ``MappingError`` when the document is not an object we can read.
        ``caller`` (E.164) is used as the phone list when the CRM gives none.
        """
        if not isinstance(doc, Mapping | list):
            raise MappingError(f"document is a {type(doc).__name__}, expected an object or a list")
        rec = self.find_record(doc)
        if rec is None:
            return None, ()
        warnings: list[str] = []

        raw_id = get_path(rec, self.customer_id.path)
        if raw_id is MISSING or raw_id is None:
            raise MappingError("customer_id missing")
        customer_id = _as_text(raw_id, allow_number=True)
        if not customer_id:
            raise MappingError(f"customer_id has wrong type {type(raw_id).__name__} or is empty")

        def text(name: str, *, allow_number: bool = False, limit: int = _MAX_STR) -> Any:
            spec: FieldSpec | None = getattr(self, name)
            if spec is None:
                return None
            raw = get_path(rec, spec.path)
            if raw is MISSING or raw is None:
                return spec.default
            value = _as_text(raw, allow_number=allow_number, limit=limit)
            if value is None:
                warnings.append(name)
                return spec.default
            return value

        tier = text("tier") or "standard"
        language = text("language")
        if language is not None and not _LANG_RE.match(language):
            warnings.append("language")
            language = None

        customer = Customer(
            customer_id=customer_id,
            account_id=text("account_id", allow_number=True) or None,
            name=text("name") or "",
            tier=tier.lower(),
            language=language,
            preferred_agent=text("preferred_agent", allow_number=True) or None,
            notes=text("notes", limit=_MAX_NOTES) or "",
            phones=self._phones(rec, caller, default_region, warnings),
            open_tickets=self._tickets(rec, warnings),
            extra=self._extra(rec, warnings),
        )
        return customer, tuple(warnings)

    def _phones(self, rec: Any, caller: str | None, region: str, warnings: list[str]) -> tuple[str, ...]:
        fallback = (caller,) if caller else ()
        if self.phones is None:
            return fallback
        raw = get_path(rec, self.phones.path)
        if raw is MISSING or raw is None:
            return fallback
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            warnings.append("phones")
            return fallback
        out: list[str] = []
        for item in raw[:_MAX_PHONES]:
            e164 = normalize(item, region) if isinstance(item, str) else None
            if e164 is None:
                if "phones" not in warnings:
                    warnings.append("phones")
                continue
            if e164 not in out:
                out.append(e164)
        return tuple(out) or fallback

    def _tickets(self, rec: Any, warnings: list[str]) -> tuple[Ticket, ...]:
        if self.tickets is None:
            return ()
        raw = get_path(rec, self.tickets.path)
        if raw is MISSING or raw is None:
            return ()
        if not isinstance(raw, list):
            warnings.append("tickets")
            return ()
        out: list[Ticket] = []
        for item in raw:
            if not isinstance(item, Mapping):
                warnings.append("tickets")
                continue
            tid = _as_text(get_path(item, self.tickets.id), allow_number=True)
            if not tid:
                warnings.append("tickets")
                continue
            subject = _as_text(get_path(item, self.tickets.subject), allow_number=False) or ""
            status = _as_text(get_path(item, self.tickets.status), allow_number=False) or "open"
            ticket = Ticket(tid, subject, status)
            if ticket.is_open:
                out.append(ticket)
            if len(out) >= _MAX_TICKETS:
                break
        return tuple(out)

    def _extra(self, rec: Any, warnings: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, spec in self.extra.items():
            raw = get_path(rec, spec.path)
            if raw is MISSING or raw is None:
                if spec.default is not None:
                    out[key] = spec.default
                continue
            if isinstance(raw, str):
                out[key] = raw[:_MAX_STR]
            elif isinstance(raw, bool | int) or (isinstance(raw, float) and math.isfinite(raw)):
                out[key] = raw
            else:
                # Nested objects are not flow-condition material.
                warnings.append(f"extra.{key}")
                if spec.default is not None:
                    out[key] = spec.default
        return out
