"""Tasks: every contact (a live call, a callback, a voicemail, a web callback request) as one kind of
routed work. ``model`` is the pure life cycle; ``store`` keeps the ones that outlive a process."""

from .model import (
    CALLBACK_KINDS,
    InvalidTransition,
    NewTask,
    RoutingDecision,
    Task,
    TaskKind,
    TaskState,
    Transition,
    order_key,
)
from .store import SqliteTaskStore, TaskStore

__all__ = ["CALLBACK_KINDS", "InvalidTransition", "NewTask", "RoutingDecision", "SqliteTaskStore", "Task", "TaskKind",
           "TaskState", "TaskStore", "Transition", "order_key"]
