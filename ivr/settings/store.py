"""Where live agent and queue definitions are kept: a small interface (``ConfigStore``) and its SQLite
implementation (one row per agent / queue, its definition as JSON). A PostgreSQL implementation follows for
the scale-out; nothing outside this module knows SQL.

Seeding (``seed``): an item of the config file whose key the store has never seen is added; one the store
knows (changed or removed through the API: a removal is kept as a tombstone) is left as the store has it.
So the store wins after the first start, a removal is not undone by the file at the next start, and an
item added to the file later still arrives. ``clear`` forgets everything (the file seeds again).

An agent's definition may hold its SIP password (an agent added through the API: Asterisk needs it in
clear text to check the phone's digest, and the app pushes it again whenever Asterisk restarts). It never
leaves through the API or the audit log; the store's file must be readable by the app only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from ..storage import open_db

Kind = Literal["agent", "queue"]
KINDS: tuple[Kind, ...] = ("agent", "queue")


class ConfigStore(Protocol):
    def definitions(self, kind: Kind) -> list[dict[str, Any]]:
        """The live definitions of that kind, in the order they were first stored."""
        ...

    def put(self, kind: Kind, key: str, definition: Mapping[str, Any], at: float) -> None:
        """Create or replace (a removed key comes back)."""
        ...

    def delete(self, kind: Kind, key: str, at: float) -> bool:
        """Remove (a tombstone: ``seed`` does not bring it back); False when it was not there."""
        ...

    def seed(self, kind: Kind, items: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str],
             at: float) -> list[str]:
        """Add the items whose key the store has never seen; returns their keys."""
        ...

    def clear(self) -> None:
        """Forget every definition and tombstone: the config file seeds again at the next start."""
        ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS config_items (
  kind TEXT NOT NULL, key TEXT NOT NULL, position INTEGER NOT NULL, definition TEXT,
  deleted INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL, PRIMARY KEY (kind, key)
);
"""


class SqliteConfigStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def definitions(self, kind: Kind) -> list[dict[str, Any]]:
        _check(kind)
        with self._lock:
            rows = self._db.execute("SELECT definition FROM config_items WHERE kind = ? AND deleted = 0 "
                                    "ORDER BY position", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def put(self, kind: Kind, key: str, definition: Mapping[str, Any], at: float) -> None:
        _check(kind)
        text = json.dumps(dict(definition), sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT INTO config_items (kind, key, position, definition, deleted, updated_at) VALUES "
                "(?, ?, (SELECT COALESCE(MAX(position), 0) + 1 FROM config_items), ?, 0, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET definition = excluded.definition, deleted = 0, "
                "updated_at = excluded.updated_at", (kind, key, text, at))

    def delete(self, kind: Kind, key: str, at: float) -> bool:
        _check(kind)
        with self._lock:
            cur = self._db.execute("UPDATE config_items SET deleted = 1, definition = NULL, updated_at = ? "
                                   "WHERE kind = ? AND key = ? AND deleted = 0", (at, kind, key))
        return cur.rowcount > 0

    def seed(self, kind: Kind, items: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str],
             at: float) -> list[str]:
        _check(kind)
        added = []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                known = {r[0] for r in self._db.execute("SELECT key FROM config_items WHERE kind = ?", (kind,))}
                for item in items:
                    k = key(item)
                    if k in known:
                        continue
                    known.add(k)
                    self._db.execute(
                        "INSERT INTO config_items (kind, key, position, definition, deleted, updated_at) VALUES "
                        "(?, ?, (SELECT COALESCE(MAX(position), 0) + 1 FROM config_items), ?, 0, ?)",
                        (kind, k, json.dumps(dict(item), sort_keys=True), at))
                    added.append(k)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM config_items")


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")


def live_definitions(store: ConfigStore | None, agents: Iterable[Mapping[str, Any]],
                     queues: Iterable[Mapping[str, Any]], at: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The agents and queues to start with: the file seeds the store (an agent's SIP password stays in the
    file / environment: the file's phones are in pjsip.conf), then the store's definitions win. Without a
    store, the file's."""
    if store is None:
        return [dict(a) for a in agents], [dict(q) for q in queues]
    store.seed("agent", [{k: v for k, v in a.items() if k != "sip_password"} for a in agents],
               lambda a: str(a.get("id")), at)
    store.seed("queue", queues, lambda q: str(q.get("name")), at)
    return store.definitions("agent"), store.definitions("queue")
