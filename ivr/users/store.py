"""Where users, their login sessions and API tokens live: a small interface (``UserStore``) and its embedded
SQLite implementation, in the store's file (tables ``users``, ``user_sessions``, ``api_tokens``). Nothing
outside this module knows SQL; secrets are stored only as hashes (see ``model``)."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from ..storage import open_db
from .model import ApiToken, Session, User


class UserStore(Protocol):
    def close(self) -> None: ...

    def user(self, username: str) -> User | None: ...

    def users(self) -> list[User]: ...

    def add_user(self, user: User) -> bool:
        """False when the name is taken."""
        ...

    def save_user(self, user: User) -> None: ...

    def delete_user(self, username: str) -> bool:
        """Also ends the user's sessions and deletes their tokens."""
        ...

    def add_session(self, session: Session) -> None: ...

    def session(self, id_hash: str) -> Session | None: ...

    def delete_session(self, id_hash: str) -> None: ...

    def delete_sessions(self, username: str, keep: str | None = None) -> int:
        """End every session of `username` but `keep`; how many."""
        ...

    def purge_sessions(self, now: float) -> int: ...

    def add_token(self, token: ApiToken) -> None: ...

    def token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    def tokens(self, username: str) -> list[ApiToken]: ...

    def revoke_token(self, username: str, token_id: str, at: float) -> bool: ...

    def token_used(self, token_id: str, at: float) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, agent_id TEXT,
  queues TEXT NOT NULL, disabled INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS user_sessions (
  id_hash TEXT PRIMARY KEY, username TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS user_sessions_user ON user_sessions(username);
CREATE TABLE IF NOT EXISTS api_tokens (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
  created_at REAL NOT NULL, last_used REAL, revoked_at REAL
);
"""

_USER = "username, role, password_hash, agent_id, queues, disabled, created_at, updated_at"
_TOKEN = "id, username, name, token_hash, created_at, last_used, revoked_at"


def _user(r: tuple) -> User:
    return User(r[0], r[1], r[2], r[3], frozenset(json.loads(r[4])), bool(r[5]), r[6], r[7])


class SqliteUserStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _all(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # ------------------------------------------------------------------------------------ users
    def user(self, username: str) -> User | None:
        rows = self._all(f"SELECT {_USER} FROM users WHERE username = ?", (username,))
        return _user(rows[0]) if rows else None

    def users(self) -> list[User]:
        return [_user(r) for r in self._all(f"SELECT {_USER} FROM users ORDER BY username")]

    def add_user(self, user: User) -> bool:
        try:
            self._run(f"INSERT INTO users ({_USER}) VALUES (?,?,?,?,?,?,?,?)", _user_row(user))
        except sqlite3.IntegrityError:
            return False
        return True

    def save_user(self, user: User) -> None:
        self._run("UPDATE users SET role=?, password_hash=?, agent_id=?, queues=?, disabled=?, created_at=?, "
                  "updated_at=? WHERE username=?", (*_user_row(user)[1:], user.username))

    def delete_user(self, username: str) -> bool:
        with self._lock:
            n = self._db.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount
            self._db.execute("DELETE FROM user_sessions WHERE username = ?", (username,))
            self._db.execute("DELETE FROM api_tokens WHERE username = ?", (username,))
        return n > 0

    # --------------------------------------------------------------------------------- sessions
    def add_session(self, session: Session) -> None:
        self._run("INSERT INTO user_sessions (id_hash, username, created_at, expires_at) VALUES (?,?,?,?)",
                  (session.id_hash, session.username, session.created_at, session.expires_at))

    def session(self, id_hash: str) -> Session | None:
        rows = self._all("SELECT id_hash, username, created_at, expires_at FROM user_sessions WHERE id_hash = ?",
                         (id_hash,))
        return Session(*rows[0]) if rows else None

    def delete_session(self, id_hash: str) -> None:
        self._run("DELETE FROM user_sessions WHERE id_hash = ?", (id_hash,))

    def delete_sessions(self, username: str, keep: str | None = None) -> int:
        return self._run("DELETE FROM user_sessions WHERE username = ? AND id_hash != ?", (username, keep or ""))

    def purge_sessions(self, now: float) -> int:
        return self._run("DELETE FROM user_sessions WHERE expires_at <= ?", (now,))

    # ----------------------------------------------------------------------------------- tokens
    def add_token(self, token: ApiToken) -> None:
        self._run(f"INSERT INTO api_tokens ({_TOKEN}) VALUES (?,?,?,?,?,?,?)",
                  (token.id, token.username, token.name, token.token_hash, token.created_at, token.last_used,
                   token.revoked_at))

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        rows = self._all(f"SELECT {_TOKEN} FROM api_tokens WHERE token_hash = ?", (token_hash,))
        return ApiToken(*rows[0]) if rows else None

    def tokens(self, username: str) -> list[ApiToken]:
        return [ApiToken(*r) for r in self._all(f"SELECT {_TOKEN} FROM api_tokens WHERE username = ? "
                                                "ORDER BY created_at, id", (username,))]

    def revoke_token(self, username: str, token_id: str, at: float) -> bool:
        return self._run("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND username = ? AND revoked_at IS NULL",
                         (at, token_id, username)) > 0

    def token_used(self, token_id: str, at: float) -> None:
        self._run("UPDATE api_tokens SET last_used = ? WHERE id = ?", (at, token_id))


def _user_row(u: User) -> tuple:
    return (u.username, u.role, u.password_hash, u.agent_id, json.dumps(sorted(u.queues)), int(u.disabled),
            u.created_at, u.updated_at)
