"""Where tasks live between restarts: a small interface (``TaskStore``) and its embedded SQLite
implementation. A PostgreSQL implementation follows for the scale-out (../shared/scale-out.md): nothing
outside this module knows SQL, and every method is one short transaction.

Live calls are not stored (their channel does not survive the process; restart adoption handles them);
every other kind is, with its history of transitions and its routing decisions (the router's offers with
their explanation): two append-only tables.

Schema changes are additive (``CREATE ... IF NOT EXISTS`` of the new tables on open), so a file written by
an earlier version opens as it is: its tasks simply have no decisions recorded.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from .model import CALLBACK_KINDS, TERMINAL, RoutingDecision, Task, TaskKind, TaskState, Transition


class TaskStore(Protocol):
    def add(self, task: Task, at: float) -> Task:
        """Store a new task, or, for a callback kind whose number already has an open callback in that
        queue, update that one instead (``Task.merged``); returns what is stored."""
        ...

    def save(self, task: Task) -> None:
        """Store the task's new state and fields, and the transitions not yet stored."""
        ...

    def get(self, task_id: str) -> Task | None: ...

    def open_tasks(self) -> list[Task]:
        """Every task not ended, in queue order (``model.order_key``) within each queue."""
        ...

    def tasks(self, *, state: TaskState | None = None, kind: TaskKind | None = None,
              queue: str | None = None, limit: int = 200) -> list[Task]:
        """The newest first (for the API)."""
        ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, queue TEXT NOT NULL, state TEXT NOT NULL,
  position_time REAL NOT NULL, created_at REAL NOT NULL, priority INTEGER NOT NULL,
  number TEXT, name TEXT NOT NULL, customer TEXT NOT NULL, required_skills TEXT NOT NULL,
  optional_skills TEXT NOT NULL, not_before REAL, not_after REAL, attempts INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL, agent_id TEXT, assigned_agent TEXT, source TEXT NOT NULL,
  outcome TEXT NOT NULL, callback_key TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_open_callback ON tasks(callback_key);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks(state, queue);
CREATE TABLE IF NOT EXISTS task_events (
  task_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, from_state TEXT NOT NULL,
  to_state TEXT NOT NULL, reason TEXT NOT NULL, agent_id TEXT, PRIMARY KEY (task_id, seq)
);
CREATE TABLE IF NOT EXISTS task_decisions (
  task_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, agent_id TEXT NOT NULL,
  attempt INTEGER NOT NULL, summary TEXT NOT NULL, explanation TEXT, PRIMARY KEY (task_id, seq)
);
"""

_COLUMNS = ("id", "kind", "queue", "state", "position_time", "created_at", "priority", "number", "name",
            "customer", "required_skills", "optional_skills", "not_before", "not_after", "attempts",
            "max_attempts", "agent_id", "assigned_agent", "source", "outcome", "callback_key")
_OPEN = tuple(s.value for s in TaskState if s not in TERMINAL)


def callback_key(task: Task) -> str | None:
    """The key that allows one open callback per number and queue (NULL for the rest: unconstrained)."""
    if task.kind in CALLBACK_KINDS and task.open and task.number:
        return f"{task.queue}\x1f{task.number}"
    return None


def _row(task: Task) -> tuple[Any, ...]:
    return (task.id, task.kind.value, task.queue, task.state.value, task.position_time, task.created_at,
            task.priority, task.number, task.name, json.dumps(dict(task.customer)),
            json.dumps(dict(task.required_skills)), json.dumps(dict(task.optional_skills)), task.not_before,
            task.not_after, task.attempts, task.max_attempts, task.agent_id, task.assigned_agent, task.source,
            task.outcome, callback_key(task))


def _task(row: Mapping[str, Any], history: Iterable[Transition],
          decisions: Iterable[RoutingDecision] = ()) -> Task:
    return Task(
        id=row["id"], kind=TaskKind(row["kind"]), queue=row["queue"], state=TaskState(row["state"]),
        position_time=row["position_time"], created_at=row["created_at"], priority=row["priority"],
        number=row["number"], name=row["name"], customer=json.loads(row["customer"]),
        required_skills=json.loads(row["required_skills"]), optional_skills=json.loads(row["optional_skills"]),
        not_before=row["not_before"], not_after=row["not_after"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], agent_id=row["agent_id"], assigned_agent=row["assigned_agent"],
        source=row["source"], outcome=row["outcome"], history=tuple(history), decisions=tuple(decisions))


def _explanation(text: str | None) -> Mapping[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class SqliteTaskStore:
    """``TaskStore`` on an SQLite connection (the project's embedded file by default)."""

    def __init__(self, db: sqlite3.Connection | str | Path = ":memory:") -> None:
        if isinstance(db, sqlite3.Connection):
            self._db = db
        else:
            if str(db) != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- writes
    def add(self, task: Task, at: float) -> Task:
        with self._lock, self._tx():
            key = callback_key(task)
            if key is not None:
                row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks WHERE callback_key = ?",
                                       (key,)).fetchone()
                if row is not None:
                    merged = self._load(dict(zip(_COLUMNS, row))).merged(task, at)
                    self._write(merged)
                    return merged
            self._write(task)
            return task

    def save(self, task: Task) -> None:
        with self._lock, self._tx():
            self._write(task)

    # ------------------------------------------------------------------------------ reads
    def get(self, task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return None if row is None else self._load(dict(zip(_COLUMNS, row)))

    def open_tasks(self) -> list[Task]:
        marks = ", ".join("?" * len(_OPEN))
        return self._select(f"WHERE state IN ({marks}) ORDER BY queue, -priority, position_time, id", _OPEN)

    def tasks(self, *, state: TaskState | None = None, kind: TaskKind | None = None,
              queue: str | None = None, limit: int = 200) -> list[Task]:
        where, args = [], []
        for col, v in (("state", state), ("kind", kind), ("queue", queue)):
            if v is not None:
                where.append(f"{col} = ?")
                args.append(str(v))
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._select(f"{clause} ORDER BY created_at DESC, id LIMIT ?", (*args, int(limit)))

    # ---------------------------------------------------------------------------- helpers
    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _select(self, tail: str, args: tuple[Any, ...]) -> list[Task]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks {tail}", args).fetchall()
            return [self._load(dict(zip(_COLUMNS, r))) for r in rows]

    def _load(self, row: dict[str, Any]) -> Task:
        events = self._db.execute("SELECT at, from_state, to_state, reason, agent_id FROM task_events "
                                  "WHERE task_id = ? ORDER BY seq", (row["id"],)).fetchall()
        decisions = self._db.execute("SELECT at, agent_id, attempt, summary, explanation FROM task_decisions "
                                     "WHERE task_id = ? ORDER BY seq", (row["id"],)).fetchall()
        return _task(row, (Transition(at, TaskState(f), TaskState(t), reason, agent)
                           for at, f, t, reason, agent in events),
                     (RoutingDecision(at, agent, attempt, summary, _explanation(expl))
                      for at, agent, attempt, summary, expl in decisions))

    def _write(self, task: Task) -> None:
        marks = ", ".join("?" * len(_COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
        self._db.execute(f"INSERT INTO tasks ({', '.join(_COLUMNS)}) VALUES ({marks}) "
                         f"ON CONFLICT(id) DO UPDATE SET {updates}", _row(task))
        (stored,) = self._db.execute("SELECT COUNT(*) FROM task_events WHERE task_id = ?", (task.id,)).fetchone()
        self._db.executemany(
            "INSERT INTO task_events (task_id, seq, at, from_state, to_state, reason, agent_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(task.id, i, t.at, t.from_state.value, t.to_state.value, t.reason, t.agent_id)
             for i, t in enumerate(task.history) if i >= stored])
        (known,) = self._db.execute("SELECT COUNT(*) FROM task_decisions WHERE task_id = ?",
                                    (task.id,)).fetchone()
        self._db.executemany(
            "INSERT INTO task_decisions (task_id, seq, at, agent_id, attempt, summary, explanation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(task.id, i, d.at, d.agent_id, d.attempt, d.summary,
              None if d.explanation is None else json.dumps(dict(d.explanation), default=str))
             for i, d in enumerate(task.decisions) if i >= known])


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
