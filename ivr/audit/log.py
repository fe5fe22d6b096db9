"""The audit log's interface and its SQLite implementation (see the package docstring)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..storage import open_db

#: keys whose values never reach the audit log (matched case-insensitively, also inside nested values)
SECRET_KEYS = frozenset({"password", "sip_password", "token", "admin_token", "secret", "password_hash",
                         "api_key", "auth_value", "csrf"})


def scrub(value: Any) -> Any:
    """`value` with every secret replaced by ``"***"`` (dicts and lists walked)."""
    if isinstance(value, dict):
        return {k: ("***" if str(k).lower() in SECRET_KEYS and v not in (None, "") else scrub(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float                 # wall clock (epoch seconds)
    actor: str                # a username, ``bootstrap-token``, or ``-`` for a failed login's unknown user
    action: str               # e.g. ``login``, ``login-failed``, ``agent.create``, ``queue.update``
    target: str               # what was changed, e.g. ``agent:alice``, ``queue:billing``, ``user:bob``
    before: Any = None
    after: Any = None
    address: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "target": self.target, "before": self.before, "after": self.after, "address": self.address}


class AuditLog(Protocol):
    def record(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None,
               address: str | None = None) -> AuditEntry:
        """Append one entry (secrets scrubbed); returns it."""
        ...

    def entries(self, *, actor: str | None = None, action: str | None = None, target: str | None = None,
                limit: int = 100) -> list[AuditEntry]:
        """The newest first."""
        ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, before TEXT, after TEXT, address TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log(target, id);
"""


class SqliteAuditLog:
    def __init__(self, path: str | Path = ":memory:", wall: Callable[[], float] = time.time) -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()
        self._wall = wall

    def close(self) -> None:
        self._db.close()

    def record(self, actor: str, action: str, target: str, *, before: Any = None, after: Any = None,
               address: str | None = None) -> AuditEntry:
        at = self._wall()
        b, a = scrub(before), scrub(after)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit_log (at, actor, action, target, before, after, address) VALUES (?,?,?,?,?,?,?)",
                (at, actor, action, target, _dump(b), _dump(a), address))
        return AuditEntry(int(cur.lastrowid or 0), at, actor, action, target, b, a, address)

    def entries(self, *, actor: str | None = None, action: str | None = None, target: str | None = None,
                limit: int = 100) -> list[AuditEntry]:
        where, args = [], []
        for col, val in (("actor", actor), ("action", action), ("target", target)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = ("SELECT id, at, actor, action, target, before, after, address FROM audit_log"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(sql, (*args, max(1, min(int(limit), 1000)))).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _load(r[5]), _load(r[6]), r[7]) for r in rows]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)
