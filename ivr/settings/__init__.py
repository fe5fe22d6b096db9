"""Agent and queue definitions changed at run time, kept in the store (``ConfigStore``; SQLite today, in the
store's file). ``config/ivr.yaml`` seeds them: an agent or a queue of the file enters the store the first time
the app sees its id / name; from then on the store's version wins (an API change or removal sticks across
restarts). See docs/acd.md, "Configuration that lives"."""

from .store import ConfigStore, SqliteConfigStore, live_definitions

__all__ = ["ConfigStore", "SqliteConfigStore", "live_definitions"]
