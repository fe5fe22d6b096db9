"""Durable embedded store (SQLite, WAL) for what calls leave behind: ACD call records, voicemails and
callback requests. One small file; every write is a single short transaction.

Calls here are synchronous and take well under a millisecond on a local file with WAL and
synchronous=NORMAL; they run at call end (not on the routing hot path).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS call_records (
  call_id TEXT PRIMARY KEY, queue TEXT NOT NULL, agent_id TEXT, outcome TEXT NOT NULL,
  priority INTEGER, entered_at REAL, offered_at REAL, answered_at REAL, ended_at REAL,
  wait_seconds REAL, talk_seconds REAL, offers INTEGER, rona_count INTEGER, short_abandon INTEGER,
  within_sl INTEGER, caller TEXT, did TEXT, flow TEXT, extra TEXT
);
CREATE INDEX IF NOT EXISTS call_records_queue ON call_records(queue, ended_at);
CREATE TABLE IF NOT EXISTS voicemails (
  id INTEGER PRIMARY KEY AUTOINCREMENT, mailbox TEXT NOT NULL, caller TEXT, recording TEXT NOT NULL,
  duration REAL, created_at REAL NOT NULL, call_id TEXT
);
CREATE TABLE IF NOT EXISTS agent_states (
  agent_id TEXT PRIMARY KEY, presence TEXT NOT NULL, pause_reason TEXT, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
  id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT NOT NULL, queue TEXT, created_at REAL NOT NULL,
  call_id TEXT, status TEXT NOT NULL DEFAULT 'pending'
);
"""


# KiB of page cache per SQLite connection (negative cache_size = KiB).
SQLITE_CACHE_KIB = 512


def configure_file_db(db: sqlite3.Connection) -> None:
    """How the project's SQLite files (call records, embedded CRM) are opened: WAL so readers never wait for
    the writer, and a small fixed page cache. Lookups are by indexed key and SQLite's default (2 MB per
    connection) filled over ~20 min of traffic, growing the process and fragmenting malloc's heap as it did
    (bench/README.md "What grows"); the OS page cache still holds the files."""
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")


def open_db(path: str | Path, schema: str) -> sqlite3.Connection:
    """A connection to one of the project's SQLite files (its directory made, opened as `configure_file_db`
    says, in autocommit mode, usable from the thread-pool) with `schema` applied; ``":memory:"`` for tests."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    if str(path) != ":memory:":
        configure_file_db(db)
    db.executescript(schema)
    return db


class Storage:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def add_call_record(self, rec: dict[str, Any], *, wall_offset: float = 0.0, caller: str = "", did: str = "",
                        flow: str = "", extra: dict[str, Any] | None = None) -> None:
        """`rec` is a CallRecord.as_dict(); monotonic times are shifted by wall_offset to wall-clock."""
        def wall(t: float | None) -> float | None:
            return None if t is None else t + wall_offset
        self._exec(
            "INSERT OR REPLACE INTO call_records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec["call_id"], rec["queue"], rec.get("agent_id"), rec["outcome"], rec.get("priority"),
             wall(rec.get("entered_at")), wall(rec.get("offered_at")), wall(rec.get("answered_at")),
             wall(rec.get("ended_at")), rec.get("wait_time"), rec.get("talk_time"), rec.get("offers"),
             rec.get("rona_count"), int(bool(rec.get("short_abandon"))),
             None if rec.get("within_service_level") is None else int(rec["within_service_level"]),
             caller, did, flow, json.dumps(extra or {})))

    def call_records(self, queue: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        cols = [d[1] for d in self._exec("PRAGMA table_info(call_records)").fetchall()]
        if queue:
            rows = self._exec("SELECT * FROM call_records WHERE queue=? ORDER BY ended_at LIMIT ?",
                              (queue, limit)).fetchall()
        else:
            rows = self._exec("SELECT * FROM call_records ORDER BY ended_at LIMIT ?", (limit,)).fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def recent_call_records(self, queue: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest records first (for the admin API)."""
        cols = [d[1] for d in self._exec("PRAGMA table_info(call_records)").fetchall()]
        where, args = ("WHERE queue=? ", (queue,)) if queue else ("", ())
        rows = self._exec(f"SELECT * FROM call_records {where}ORDER BY ended_at DESC LIMIT ?",
                          (*args, limit)).fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def add_voicemail(self, mailbox: str, caller: str, recording: str, duration: float, call_id: str = "",
                      at: float | None = None) -> int:
        cur = self._exec("INSERT INTO voicemails(mailbox, caller, recording, duration, created_at, call_id) "
                         "VALUES (?,?,?,?,?,?)", (mailbox, caller, recording, duration, at or time.time(), call_id))
        return int(cur.lastrowid)

    def voicemails(self, mailbox: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT id, mailbox, caller, recording, duration, created_at, call_id FROM voicemails"
        rows = self._exec(q + (" WHERE mailbox=?" if mailbox else "") + " ORDER BY id",
                          (mailbox,) if mailbox else ()).fetchall()
        keys = ["id", "mailbox", "caller", "recording", "duration", "created_at", "call_id"]
        return [dict(zip(keys, r)) for r in rows]

    def voicemail(self, voicemail_id: int) -> dict[str, Any] | None:
        row = self._exec("SELECT id, mailbox, caller, recording, duration, created_at, call_id FROM voicemails "
                         "WHERE id=?", (voicemail_id,)).fetchone()
        keys = ["id", "mailbox", "caller", "recording", "duration", "created_at", "call_id"]
        return None if row is None else dict(zip(keys, row))

    def voicemails_before(self, created_before: float) -> list[dict[str, Any]]:
        """Voicemails left before this wall-clock time (retention), oldest first."""
        rows = self._exec("SELECT id, recording FROM voicemails WHERE created_at < ? ORDER BY id",
                          (created_before,)).fetchall()
        return [{"id": r[0], "recording": r[1]} for r in rows]

    def delete_voicemail(self, voicemail_id: int) -> bool:
        return self._exec("DELETE FROM voicemails WHERE id=?", (voicemail_id,)).rowcount > 0

    def agent_states(self) -> dict[str, tuple[str, str | None]]:
        """agent id -> (presence, pause reason) as last saved: presence is ``logged_in``, ``paused`` or
        ``logged_out`` (what the agent or a supervisor chose; not the moment-to-moment call states)."""
        return {r[0]: (r[1], r[2]) for r in
                self._exec("SELECT agent_id, presence, pause_reason FROM agent_states").fetchall()}

    def set_agent_state(self, agent_id: str, presence: str, pause_reason: str | None = None) -> None:
        self._exec("INSERT INTO agent_states(agent_id, presence, pause_reason, updated_at) VALUES (?,?,?,?) "
                   "ON CONFLICT(agent_id) DO UPDATE SET presence = excluded.presence, "
                   "pause_reason = excluded.pause_reason, updated_at = excluded.updated_at",
                   (agent_id, presence, pause_reason, time.time()))

    def add_callback(self, number: str, queue: str, call_id: str = "", at: float | None = None) -> int:
        cur = self._exec("INSERT INTO callbacks(number, queue, created_at, call_id) VALUES (?,?,?,?)",
                         (number, queue, at or time.time(), call_id))
        return int(cur.lastrowid)

    def callbacks(self, status: str | None = "pending") -> list[dict[str, Any]]:
        q = "SELECT id, number, queue, created_at, call_id, status FROM callbacks"
        rows = self._exec(q + (" WHERE status=?" if status else "") + " ORDER BY id",
                          (status,) if status else ()).fetchall()
        return [dict(zip(["id", "number", "queue", "created_at", "call_id", "status"], r)) for r in rows]
