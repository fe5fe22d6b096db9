"""Embedded default CRM: customers, phone numbers, tickets and call history in SQLite.

What it is for: a working caller-ID lookup out of the box (demo, small sites),
and the local interaction history behind the repeat-caller flag, also used by
the HTTP adapter. A file path or ``:memory:``; files use WAL so readers (call
lookups) never wait for a writer (history, imports).

Why ``asyncio.to_thread``: a lookup is a couple of indexed queries, well under a
millisecond, but a disk stall, a WAL checkpoint or a CSV import holding the
write lock must not freeze the event loop that drives every live call. So each
public coroutine runs one short synchronous unit of work in a worker thread,
serialised on one connection by a lock (sqlite3 connections are not safe for
concurrent use, and ``:memory:`` databases exist only on their connection).

Every query uses parameters (never string formatting), so quotes and
``'; DROP TABLE`` in names are just data. Phone numbers reach logs only masked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ivr.crm.importer import (
    CsvImportError,
    ImportReport,
    RowError,
    parse_csv,
    parse_yaml,
    read_csv_file,
)
from ivr.crm.errors import CrmConfigError
from ivr.crm.lookup import MAX_RECENT, CrmStats
from ivr.crm.model import Customer, Interaction, LookupResult, LookupStatus, Ticket
from ivr.crm.phone import is_e164, mask
from ivr.crm.rules import QueueContactQuality, is_repeat_caller, last_agent
from ivr.storage import configure_file_db

__all__ = ["CsvImportError", "ImportReport", "RowError", "SqliteCrm"]

log = logging.getLogger("ivr.crm.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id     TEXT PRIMARY KEY,
    account_id      TEXT,
    name            TEXT NOT NULL DEFAULT '',
    tier            TEXT NOT NULL DEFAULT 'standard',
    language        TEXT,
    preferred_agent TEXT,
    notes           TEXT NOT NULL DEFAULT '',
    extra           TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS phones (
    e164        TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS phones_by_customer ON phones(customer_id);
CREATE TABLE IF NOT EXISTS tickets (
    customer_id TEXT NOT NULL REFERENCES customers(customer_id) ON DELETE CASCADE,
    ticket_id   TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'open',
    PRIMARY KEY (customer_id, ticket_id)
);
CREATE TABLE IF NOT EXISTS interactions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    e164             TEXT,
    customer_id      TEXT,
    at               REAL NOT NULL,
    call_id          TEXT NOT NULL DEFAULT '',
    did              TEXT NOT NULL DEFAULT '',
    ivr_path         TEXT NOT NULL DEFAULT '[]',
    keys             TEXT NOT NULL DEFAULT '',
    queue            TEXT,
    wait_seconds     REAL NOT NULL DEFAULT 0,
    agent_id         TEXT,
    outcome          TEXT NOT NULL DEFAULT '',
    duration_seconds REAL NOT NULL DEFAULT 0,
    kind             TEXT NOT NULL DEFAULT 'call',
    state            TEXT NOT NULL DEFAULT '',
    attempt          INTEGER NOT NULL DEFAULT 0,
    detail           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS interactions_by_number ON interactions(e164, at);
CREATE INDEX IF NOT EXISTS interactions_by_customer ON interactions(customer_id, at);
CREATE INDEX IF NOT EXISTS interactions_by_time ON interactions(at);
"""

# Columns added since the first version of the interactions table: (name, SQL type and default). An older
# file gets them on open (``_migrate``); its rows read as calls.
_ADDED_INTERACTION_COLUMNS = (
    ("kind", "TEXT NOT NULL DEFAULT 'call'"),
    ("state", "TEXT NOT NULL DEFAULT ''"),
    ("attempt", "INTEGER NOT NULL DEFAULT 0"),
    ("detail", "TEXT NOT NULL DEFAULT ''"),
)

# How far back "last agent who served this caller" looks.
DEFAULT_LAST_AGENT_WINDOW = 30 * 86400.0


class SqliteCrm:
    """The embedded CRM store; implements ``CrmLookup``."""

    source = "sqlite"

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        default_region: str = "GB",
        repeat_window_seconds: float = 86400.0,
        last_agent_window_seconds: float = DEFAULT_LAST_AGENT_WINDOW,
        clock: Callable[[], float] = time.time,
        stats: CrmStats | None = None,
    ) -> None:
        self.path = str(path)
        self.default_region = default_region
        self.repeat_window_seconds = float(repeat_window_seconds)
        self.last_agent_window_seconds = float(last_agent_window_seconds)
        self._clock = clock  # wall clock, epoch seconds: history windows span days
        self.stats = stats if stats is not None else CrmStats()
        self._lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; multi-statement writes use explicit BEGIN.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=5.0
        )
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                configure_file_db(self._db)
            self._db.executescript(_SCHEMA)
            _migrate(self._db)

    # ------------------------------------------------------------------ plumbing

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            if self._db is None:
                # Same error sqlite3 gives for a closed connection, so callers handle one type.
                raise sqlite3.ProgrammingError("SqliteCrm is closed")
            return fn(self._db)

    async def _call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await asyncio.to_thread(self._run, fn)

    @property
    def journal_mode(self) -> str:
        return str(self._run(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0]))

    # ------------------------------------------------------------------ CrmLookup

    async def lookup(self, e164: str | None) -> LookupResult:
        started = time.perf_counter()
        if not e164 or not is_e164(e164):
            result = LookupResult(LookupStatus.ANONYMOUS, None, self.source, 0.0)
            self.stats.observe(result)
            return result
        now = self._clock()
        try:
            customer, history = await self._call(lambda db: self._lookup_sync(db, e164, now))
        except sqlite3.Error as exc:
            log.warning("CRM store lookup failed: %s (caller %s)", type(exc).__name__, mask(e164))
            result = LookupResult(
                LookupStatus.ERROR,
                None,
                self.source,
                time.perf_counter() - started,
                caller=e164,
                detail="sqlite",
            )
            self.stats.observe(result)
            return result
        result = LookupResult(
            LookupStatus.FOUND if customer else LookupStatus.NOT_FOUND,
            customer,
            self.source,
            time.perf_counter() - started,
            repeat_caller=is_repeat_caller(history, now, self.repeat_window_seconds),
            last_agent=last_agent(history),
            caller=e164,
        )
        self.stats.observe(result)
        log.debug(
            "CRM store lookup %s: %s in %.1f ms", mask(e164), result.status.value, result.latency * 1000
        )
        return result

    def _lookup_sync(
        self, db: sqlite3.Connection, e164: str, now: float
    ) -> tuple[Customer | None, list[Interaction]]:
        row = db.execute(
            "SELECT c.* FROM phones p JOIN customers c ON c.customer_id = p.customer_id WHERE p.e164 = ?",
            (e164,),
        ).fetchone()
        customer = self._customer_from_row(db, row) if row else None
        since = now - max(self.repeat_window_seconds, self.last_agent_window_seconds)
        history = self._history_sync(db, e164, since, MAX_RECENT, calls_only=True)
        return customer, history

    async def history_flags(self, e164: str) -> tuple[bool, str | None]:
        """(repeat caller?, last agent) for ``e164`` from the local history."""
        now = self._clock()
        since = now - max(self.repeat_window_seconds, self.last_agent_window_seconds)
        history = await self._call(lambda db: self._history_sync(db, e164, since, MAX_RECENT, calls_only=True))
        return is_repeat_caller(history, now, self.repeat_window_seconds), last_agent(history)

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        number = e164 if e164 and is_e164(e164) else None
        try:
            await self._call(lambda db: self._record_sync(db, number, interaction))
        except sqlite3.Error as exc:
            self.stats.history_errors += 1
            log.warning(
                "CRM store: could not record interaction: %s (caller %s)", type(exc).__name__, mask(number)
            )
            return
        self.stats.history_records += 1

    def _record_sync(self, db: sqlite3.Connection, e164: str | None, i: Interaction) -> None:
        customer_id = i.customer_id
        if customer_id is None and e164 is not None:
            # Attribute the call to the customer owning the number now, so FCR and
            # history follow the customer if the number is later reassigned.
            row = db.execute("SELECT customer_id FROM phones WHERE e164 = ?", (e164,)).fetchone()
            customer_id = row[0] if row else None
        db.execute(
            "INSERT INTO interactions (e164, customer_id, at, call_id, did, ivr_path, keys, queue,"
            " wait_seconds, agent_id, outcome, duration_seconds, kind, state, attempt, detail)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                e164,
                customer_id,
                float(i.at),
                i.call_id,
                i.did,
                json.dumps(list(i.ivr_path), ensure_ascii=False),
                i.keys,
                i.queue,
                float(i.wait_seconds),
                i.agent_id,
                i.outcome,
                float(i.duration_seconds),
                str(i.kind),
                i.state,
                int(i.attempt),
                i.detail,
            ),
        )

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        if not e164 or not is_e164(e164):
            return []
        limit = max(0, min(int(limit), MAX_RECENT))
        return await self._call(lambda db: self._history_sync(db, e164, None, limit))

    def _history_sync(
        self, db: sqlite3.Connection, e164: str, since: float | None, limit: int, *, calls_only: bool = False
    ) -> list[Interaction]:
        # calls_only for the repeat-caller / last-agent flags: a task's steps must not crowd calls out of
        # the LIMIT (the rules ignore them anyway)
        kind = " AND kind = 'call'" if calls_only else ""
        if since is None:
            rows = db.execute(
                f"SELECT * FROM interactions WHERE e164 = ?{kind} ORDER BY at DESC, id DESC LIMIT ?", (e164, limit)
            ).fetchall()
        else:
            rows = db.execute(
                f"SELECT * FROM interactions WHERE e164 = ? AND at >= ?{kind} ORDER BY at DESC, id DESC LIMIT ?",
                (e164, since, limit),
            ).fetchall()
        return [_interaction_from_row(r) for r in rows]

    async def interactions_between(self, start: float, end: float) -> list[Interaction]:
        """All interactions with ``start <= at < end``, oldest first (for FCR reports)."""
        # rows are turned into Interactions in the worker thread too: a day of history is thousands of rows,
        # and the event loop serves calls meanwhile
        return await self._call(
            lambda db: [_interaction_from_row(r) for r in db.execute(
                "SELECT * FROM interactions WHERE at >= ? AND at < ? ORDER BY at, id", (start, end)
            ).fetchall()]
        )

    async def contact_quality(self, now: float, window_seconds: float,
                              repeat_window_seconds: float) -> dict[str, QueueContactQuality]:
        """``rules.contact_quality`` over this store's history, computed by SQLite (``_CONTACT_QUALITY``):
        the same figures without turning a day of history into Python objects. SQLite runs the query without
        the GIL, so the event loop serves calls meanwhile; the Python rule over ~20,000 calls held it for a
        third of a second every minute (bench/README.md), and a day of a busy center is many times that."""
        w, r = float(window_seconds), float(repeat_window_seconds)
        if w <= 0 or r <= 0:
            raise CrmConfigError("window_seconds and repeat_window_seconds must be > 0")
        # each bound computed exactly as the Python rule computes it (floating point)
        params = {"lo": now - w - r, "now": now, "fcr_lo": now - r - w, "fcr_hi": now - r, "rep_lo": now - w,
                  "r": r}
        rows = await self._call(lambda db: db.execute(_CONTACT_QUALITY, params).fetchall())
        return {str(q): QueueContactQuality(str(q), int(a), int(b), int(c), int(d)) for q, a, b, c, d in rows}

    async def prune_interactions(self, older_than: float) -> int:
        """Delete history older than ``older_than`` (epoch seconds); returns rows deleted."""
        return int(
            await self._call(
                lambda db: db.execute("DELETE FROM interactions WHERE at < ?", (older_than,)).rowcount
            )
        )

    async def close(self) -> None:
        def _close(db: sqlite3.Connection) -> None:
            db.close()

        with self._lock:
            db, self._db = self._db, None
        if db is not None:
            await asyncio.to_thread(_close, db)

    # ------------------------------------------------------------------ customers

    async def get_customer(self, customer_id: str) -> Customer | None:
        def fn(db: sqlite3.Connection) -> Customer | None:
            row = db.execute("SELECT * FROM customers WHERE customer_id = ?", (customer_id,)).fetchone()
            return self._customer_from_row(db, row) if row else None

        return await self._call(fn)

    async def customer_count(self) -> int:
        return int(await self._call(lambda db: db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]))

    async def upsert_customer(self, customer: Customer) -> None:
        """Insert or replace one customer with its numbers and tickets.

        Raises ``ValueError`` if one of its numbers belongs to another customer.
        """

        def fn(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                problem = self._upsert_sync(db, customer)
                if problem:
                    raise ValueError(problem)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._call(fn)

    def _upsert_sync(self, db: sqlite3.Connection, c: Customer) -> str | None:
        """Write one customer inside the caller's transaction; returns an error message instead of writing."""
        for e164 in c.phones:
            row = db.execute("SELECT customer_id FROM phones WHERE e164 = ?", (e164,)).fetchone()
            if row is not None and row[0] != c.customer_id:
                return f"phone {mask(e164)} already belongs to customer {row[0]!r}"
        db.execute(
            "INSERT INTO customers"
            " (customer_id, account_id, name, tier, language, preferred_agent, notes, extra)"
            " VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT(customer_id) DO UPDATE SET account_id=excluded.account_id, name=excluded.name,"
            " tier=excluded.tier, language=excluded.language, preferred_agent=excluded.preferred_agent,"
            " notes=excluded.notes, extra=excluded.extra",
            (
                c.customer_id,
                c.account_id,
                c.name,
                c.tier,
                c.language,
                c.preferred_agent,
                c.notes,
                json.dumps(dict(c.extra), ensure_ascii=False),
            ),
        )
        db.execute("DELETE FROM phones WHERE customer_id = ?", (c.customer_id,))
        db.executemany(
            "INSERT INTO phones (e164, customer_id) VALUES (?, ?)", [(p, c.customer_id) for p in c.phones]
        )
        db.execute("DELETE FROM tickets WHERE customer_id = ?", (c.customer_id,))
        db.executemany(
            "INSERT OR REPLACE INTO tickets (customer_id, ticket_id, subject, status) VALUES (?,?,?,?)",
            [(c.customer_id, t.id, t.subject, t.status) for t in c.open_tickets],
        )
        return None

    def _customer_from_row(self, db: sqlite3.Connection, row: sqlite3.Row) -> Customer:
        cid = row["customer_id"]
        phones = tuple(
            r[0] for r in db.execute("SELECT e164 FROM phones WHERE customer_id = ? ORDER BY rowid", (cid,))
        )
        tickets = tuple(
            t
            for t in (
                Ticket(r["ticket_id"], r["subject"], r["status"])
                for r in db.execute("SELECT * FROM tickets WHERE customer_id = ? ORDER BY rowid", (cid,))
            )
            if t.is_open
        )
        try:
            extra = json.loads(row["extra"] or "{}")
        except ValueError:
            extra = {}
        return Customer(
            customer_id=cid,
            name=row["name"],
            account_id=row["account_id"],
            phones=phones,
            tier=row["tier"],
            language=row["language"],
            preferred_agent=row["preferred_agent"],
            notes=row["notes"],
            open_tickets=tickets,
            extra=extra if isinstance(extra, dict) else {},
        )

    # ------------------------------------------------------------------ imports

    async def import_csv(self, path: str | Path, *, partial: bool = False) -> ImportReport:
        """Import customers from a CSV file (see ``ivr.crm.importer`` for the columns).

        Default (all or nothing): if any row is bad, nothing is written and the
        report lists every bad row. ``partial=True`` writes the good rows and
        still reports the rejected ones. Raises ``CsvImportError`` when the file
        as a whole is unusable (missing, not UTF-8, bad header).
        """
        text = await asyncio.to_thread(read_csv_file, path)
        rows, errors = parse_csv(text, self.default_region)
        return await self._import_rows(str(path), rows, errors, partial)

    async def import_yaml(self, path: str | Path, *, partial: bool = False) -> ImportReport:
        text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        rows, errors = parse_yaml(text, self.default_region)
        return await self._import_rows(str(path), rows, errors, partial)

    async def load_sample(self, path: str | Path) -> ImportReport:
        """Load demo customers from ``.yaml``/``.yml`` or ``.csv`` (all or nothing)."""
        return await asyncio.to_thread(self.load_file_sync, path)

    def load_file_sync(self, path: str | Path, *, partial: bool = False) -> ImportReport:
        """Blocking variant of ``load_sample`` for start-up, before the event loop serves calls."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            rows, errors = parse_csv(read_csv_file(path), self.default_region)
        elif suffix in (".yaml", ".yml"):
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CsvImportError(f"cannot read {path}: {exc}") from None
            rows, errors = parse_yaml(text, self.default_region)
        else:
            raise CsvImportError(f"{path}: expected a .csv, .yaml or .yml file")
        return self._run(lambda db: self._import_sync(db, str(path), rows, errors, partial))

    async def _import_rows(
        self, source: str, rows: list[tuple[int, Customer]], errors: list[RowError], partial: bool
    ) -> ImportReport:
        return await self._call(lambda db: self._import_sync(db, source, rows, errors, partial))

    def _import_sync(
        self,
        db: sqlite3.Connection,
        source: str,
        rows: Iterable[tuple[int, Customer]],
        errors: list[RowError],
        partial: bool,
    ) -> ImportReport:
        errors = list(errors)
        imported = 0
        # One transaction: a crash or a bad row mid-way leaves the old data intact.
        db.execute("BEGIN IMMEDIATE")
        try:
            for line, customer in rows:
                db.execute("SAVEPOINT row")
                problem = self._upsert_sync(db, customer)
                if problem:
                    db.execute("ROLLBACK TO row")
                    errors.append(RowError(line, problem))
                else:
                    imported += 1
                db.execute("RELEASE row")
            errors.sort(key=lambda e: e.line)
            if errors and not partial:
                db.execute("ROLLBACK")
                report = ImportReport(source, 0, tuple(errors), committed=False)
            else:
                db.execute("COMMIT")
                report = ImportReport(source, imported, tuple(errors), committed=True)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if report.rejected:
            log.warning(
                "CRM import %s; first problems: %s",
                report.summary(),
                "; ".join(str(e) for e in report.rejected[:5]),
            )
        else:
            log.info("CRM import %s", report.summary())
        return report


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a file written by an earlier version up to this schema (additive: new columns with defaults)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(interactions)")}
    for name, decl in _ADDED_INTERACTION_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE interactions ADD COLUMN {name} {decl}")


# rules.contact_quality in SQL. A call's identity is its customer when known, else its number (the
# Interaction.identity rule, empty strings counting as unknown); "another call of the same caller" looks
# among the calls of the report's span only, like the rule, through the by-customer / by-number indexes.
_CONTACT_QUALITY = """
WITH c AS (
  SELECT at, queue, outcome,
         CASE WHEN customer_id IS NOT NULL AND customer_id != '' THEN customer_id END AS cust,
         CASE WHEN (customer_id IS NULL OR customer_id = '') AND e164 IS NOT NULL AND e164 != ''
              THEN e164 END AS num
  FROM interactions
  WHERE kind = 'call' AND at > :lo AND at <= :now AND queue IS NOT NULL AND queue != ''
), f AS (
  SELECT queue,
         (at > :fcr_lo AND at <= :fcr_hi AND outcome = 'answered') AS fcr,
         (at > :rep_lo) AS rep,
         CASE WHEN cust IS NOT NULL THEN EXISTS (
                SELECT 1 FROM interactions d WHERE d.customer_id = c.cust AND d.kind = 'call'
                  AND d.at > c.at AND d.at <= c.at + :r AND d.at > :lo AND d.at <= :now)
              ELSE EXISTS (
                SELECT 1 FROM interactions d WHERE d.e164 = c.num AND d.kind = 'call'
                  AND (d.customer_id IS NULL OR d.customer_id = '')
                  AND d.at > c.at AND d.at <= c.at + :r AND d.at > :lo AND d.at <= :now) END AS after,
         CASE WHEN cust IS NOT NULL THEN EXISTS (
                SELECT 1 FROM interactions d WHERE d.customer_id = c.cust AND d.kind = 'call'
                  AND d.at >= c.at - :r AND d.at < c.at AND d.at > :lo AND d.at <= :now)
              ELSE EXISTS (
                SELECT 1 FROM interactions d WHERE d.e164 = c.num AND d.kind = 'call'
                  AND (d.customer_id IS NULL OR d.customer_id = '')
                  AND d.at >= c.at - :r AND d.at < c.at AND d.at > :lo AND d.at <= :now) END AS before
  FROM c WHERE cust IS NOT NULL OR num IS NOT NULL
)
SELECT queue, SUM(fcr AND NOT after), SUM(fcr AND after), SUM(rep AND NOT before), SUM(rep AND before)
FROM f WHERE fcr OR rep GROUP BY queue ORDER BY queue
"""


def _interaction_from_row(r: sqlite3.Row) -> Interaction:
    try:
        path = json.loads(r["ivr_path"] or "[]")
    except ValueError:
        path = []
    return Interaction(
        at=r["at"],
        call_id=r["call_id"],
        did=r["did"],
        ivr_path=tuple(str(p) for p in path) if isinstance(path, list) else (),
        keys=r["keys"],
        queue=r["queue"],
        wait_seconds=r["wait_seconds"],
        agent_id=r["agent_id"],
        outcome=r["outcome"],
        duration_seconds=r["duration_seconds"],
        customer_id=r["customer_id"],
        caller=r["e164"],
        kind=r["kind"],
        state=r["state"],
        attempt=r["attempt"],
        detail=r["detail"],
    )
