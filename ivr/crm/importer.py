"""Validate customer records from YAML (sample data) and CSV (bulk import).

What it is for: turning admin-supplied files into checked ``Customer`` objects,
with a clear message per bad row (``line 7: customer_id is required``), before
anything touches the database. Phone numbers in messages are masked.

CSV columns (header row required, UTF-8, an Excel BOM is fine)::

    customer_id,name,phones,account_id,tier,language,preferred_agent,notes,extra.<key>...

``customer_id`` and ``phones`` are required; ``phones`` holds one or more
numbers separated by ``;`` or ``|``. Any other column name is an error for the
whole file (a typo such as ``langauge`` must not silently drop data).

Must not import asyncio, aiohttp or sqlite3: the store does the writing.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ivr.crm.errors import InvalidRecord
from ivr.crm.model import Customer, Ticket
from ivr.crm.phone import mask, normalize

__all__ = [
    "CSV_COLUMNS",
    "CsvImportError",
    "ImportReport",
    "RowError",
    "customer_from_dict",
    "parse_csv",
    "parse_yaml",
]

CSV_COLUMNS = ("customer_id", "name", "phones", "account_id", "tier", "language", "preferred_agent", "notes")
_REQUIRED_COLUMNS = ("customer_id", "phones")
_DICT_KEYS = frozenset({*CSV_COLUMNS, "tickets", "extra"})

_LIMITS = {
    "customer_id": 64,
    "account_id": 64,
    "name": 200,
    "tier": 32,
    "language": 16,
    "preferred_agent": 64,
    "notes": 2000,
}
_ID_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_MAX_PHONES = 20
_MAX_ROWS = 1_000_000
_MAX_TICKETS = 100
_TICKET_LIMITS = {"id": 64, "subject": 200, "status": 32}
_MAX_EXTRA_TEXT = 256


class CsvImportError(ValueError):
    """The file as a whole cannot be imported (unreadable, not UTF-8, bad header)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based line in the file where the row starts (YAML: 1-based record index)
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ImportReport:
    """Outcome of an import. ``committed`` False means nothing was written."""

    source: str
    imported: int
    rejected: tuple[RowError, ...]
    committed: bool

    @property
    def ok(self) -> bool:
        return self.committed and not self.rejected

    def summary(self) -> str:
        head = f"{self.source}: {self.imported} imported, {len(self.rejected)} rejected"
        if not self.committed:
            head += " (nothing written)"
        return head


def _text(d: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = d.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidRecord(f"{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord(f"{key} must be text, got {type(value).__name__}")
    text = str(value).strip()
    if "\x00" in text:
        raise InvalidRecord(f"{key} contains a NUL character")
    # Line breaks and tabs are whitespace (a name split over two lines in a spreadsheet cell becomes one line,
    # see model.clean_text); any other control character (escape codes, backspace, DEL, C1) is refused.
    if any(c not in "\n\r\t" and unicodedata.category(c) == "Cc" for c in text):
        raise InvalidRecord(f"{key} contains control characters")
    limit = _LIMITS[key]
    if len(text) > limit:
        raise InvalidRecord(f"{key} is longer than {limit} characters")
    return text


def _phones(value: Any, region: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [p for p in re.split(r"[;|]", value) if p.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidRecord("phones is required (one or more numbers separated by ';')")
    if not items:
        raise InvalidRecord("phones is required (one or more numbers separated by ';')")
    if len(items) > _MAX_PHONES:
        raise InvalidRecord(f"more than {_MAX_PHONES} phone numbers")
    out: list[str] = []
    for n, item in enumerate(items, 1):
        e164 = (
            normalize(str(item), region)
            if isinstance(item, str | int) and not isinstance(item, bool)
            else None
        )
        if e164 is None:
            shown = mask(str(item)) if isinstance(item, str | int) else type(item).__name__
            raise InvalidRecord(f"phone #{n} ({shown}) is not a valid phone number")
        if e164 not in out:
            out.append(e164)
    return tuple(out)


def customer_from_dict(d: Mapping[str, Any], default_region: str = "GB") -> Customer:
    """Validate one record; ``InvalidRecord`` (a ValueError) with a human-readable message if bad."""
    if not isinstance(d, Mapping):
        raise InvalidRecord(f"expected a mapping, got {type(d).__name__}")
    unknown = {k for k in d if k not in _DICT_KEYS and not str(k).startswith("extra.")}
    if unknown:
        raise InvalidRecord(f"unknown field(s) {sorted(map(str, unknown))}")
    customer_id = _text(d, "customer_id", required=True)
    assert customer_id is not None
    if not _ID_RE.match(customer_id):
        raise InvalidRecord("customer_id contains control characters")
    language = _text(d, "language")
    if language is not None and not _LANG_RE.match(language):
        raise InvalidRecord("language must be a language tag such as 'fr' or 'fr-CA'")
    tier = (_text(d, "tier") or "standard").lower()

    tickets: list[Ticket] = []
    raw_tickets = d.get("tickets") or []
    if not isinstance(raw_tickets, list):
        raise InvalidRecord("tickets must be a list")
    if len(raw_tickets) > _MAX_TICKETS:
        raise InvalidRecord(f"more than {_MAX_TICKETS} tickets")
    for t in raw_tickets:
        if not isinstance(t, Mapping) or t.get("id") in (None, ""):
            raise InvalidRecord("each ticket needs an id")
        fields = {"id": t["id"], "subject": t.get("subject") or "", "status": t.get("status") or "open"}
        for name, value in fields.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidRecord(f"ticket {name} must be text, got {type(value).__name__}")
            if len(str(value)) > _TICKET_LIMITS[name]:
                raise InvalidRecord(f"ticket {name} is longer than {_TICKET_LIMITS[name]} characters")
        tickets.append(Ticket(str(fields["id"]), str(fields["subject"]), str(fields["status"])))

    extra: dict[str, Any] = {}
    raw_extra = d.get("extra") or {}
    if not isinstance(raw_extra, Mapping):
        raise InvalidRecord("extra must be a mapping")
    extra.update({str(k): v for k, v in raw_extra.items()})
    for k, v in d.items():
        if str(k).startswith("extra.") and v not in (None, ""):
            extra[str(k)[len("extra.") :]] = v
    for k, v in extra.items():
        if not isinstance(v, str | int | float | bool):
            raise InvalidRecord(f"extra.{k} must be a scalar")
        if isinstance(v, str) and len(v) > _MAX_EXTRA_TEXT:
            raise InvalidRecord(f"extra.{k} is longer than {_MAX_EXTRA_TEXT} characters")

    return Customer(
        customer_id=customer_id,
        name=_text(d, "name") or "",
        account_id=_text(d, "account_id"),
        phones=_phones(d.get("phones"), default_region),
        tier=tier,
        language=language,
        preferred_agent=_text(d, "preferred_agent"),
        notes=_text(d, "notes") or "",
        open_tickets=tuple(tickets),
        extra=extra,
    )


def _check_duplicates(
    rows: Iterable[tuple[int, Customer]],
) -> tuple[list[tuple[int, Customer]], list[RowError]]:
    """Reject a row whose customer_id or phone number already appeared earlier in the same file."""
    seen_ids: dict[str, int] = {}
    seen_phones: dict[str, int] = {}
    good: list[tuple[int, Customer]] = []
    errors: list[RowError] = []
    for line, c in rows:
        if c.customer_id in seen_ids:
            errors.append(
                RowError(
                    line, f"customer_id {c.customer_id!r} already used on line {seen_ids[c.customer_id]}"
                )
            )
            continue
        clash = next((p for p in c.phones if p in seen_phones), None)
        if clash is not None:
            errors.append(RowError(line, f"phone {mask(clash)} already used on line {seen_phones[clash]}"))
            continue
        seen_ids[c.customer_id] = line
        for p in c.phones:
            seen_phones[p] = line
        good.append((line, c))
    return good, errors


def parse_csv(text: str, default_region: str = "GB") -> tuple[list[tuple[int, Customer]], list[RowError]]:
    """Parse CSV text into ``(line, Customer)`` pairs and per-row errors.

    Raises ``CsvImportError`` for problems with the whole file (header).
    """
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvImportError("file is empty (a header row is required)") from None
    except csv.Error as exc:
        raise CsvImportError(f"line 1: unreadable header ({exc})") from None
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS and not (c.startswith("extra.") and len(c) > 6)]
    if unknown:
        raise CsvImportError(
            f"line 1: unknown column(s) {unknown} (allowed: {list(CSV_COLUMNS)} and extra.<key>)"
        )
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise CsvImportError(f"line 1: missing required column(s) {missing}")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise CsvImportError(f"line 1: duplicate column(s) {dupes}")

    rows: list[tuple[int, Customer]] = []
    errors: list[RowError] = []
    line = reader.line_num + 1
    while True:
        start = line
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(start, f"unreadable CSV ({exc})"))
            break  # the reader cannot resynchronise reliably after a quoting error
        line = reader.line_num + 1
        if not values or all(not v.strip() for v in values):
            continue  # blank line
        if len(rows) + len(errors) >= _MAX_ROWS:
            errors.append(RowError(start, f"more than {_MAX_ROWS} rows"))
            break
        if len(values) != len(columns):
            errors.append(RowError(start, f"expected {len(columns)} fields, got {len(values)}"))
            continue
        record = dict(zip(columns, values, strict=True))
        try:
            rows.append((start, customer_from_dict(record, default_region)))
        except ValueError as exc:
            errors.append(RowError(start, str(exc)))
    good, dup_errors = _check_duplicates(rows)
    errors.extend(dup_errors)
    errors.sort(key=lambda e: e.line)
    return good, errors


def read_csv_file(path: str | Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CsvImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Say where, so the admin can fix the export (usually Latin-1 from a spreadsheet).
        line = data[: exc.start].count(b"\n") + 1
        raise CsvImportError(
            f"line {line}: file is not UTF-8 (byte {exc.start}); export it as UTF-8"
        ) from None


def parse_yaml(text: str, default_region: str = "GB") -> tuple[list[tuple[int, Customer]], list[RowError]]:
    """Parse a ``customers:`` YAML document; "line" in errors is the 1-based record index."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CsvImportError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise CsvImportError("invalid YAML: nested too deeply") from None
    except ValueError as exc:      # e.g. an integer of thousands of digits
        raise CsvImportError(f"invalid YAML: {exc}") from None
    if isinstance(doc, Mapping):
        unknown = set(doc) - {"customers"}
        if unknown:
            raise CsvImportError(
                f"unknown top-level key(s) {sorted(map(str, unknown))} (expected 'customers')"
            )
        doc = doc.get("customers")
    if not isinstance(doc, list):
        raise CsvImportError("expected 'customers:' followed by a list of records")
    rows: list[tuple[int, Customer]] = []
    errors: list[RowError] = []
    for n, rec in enumerate(doc, 1):
        try:
            rows.append((n, customer_from_dict(rec, default_region)))
        except ValueError as exc:
            errors.append(RowError(n, str(exc)))
    good, dup_errors = _check_duplicates(rows)
    errors.extend(dup_errors)
    errors.sort(key=lambda e: e.line)
    return good, errors
