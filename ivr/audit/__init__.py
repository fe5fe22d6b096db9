"""The audit log: every configuration change and every login, who, when, what, before and after.

`AuditLog` is the interface (a PostgreSQL implementation follows for the scale-out); `SqliteAuditLog` keeps
it in the embedded store. Secrets never enter it: values under a secret key (passwords, tokens, SIP
passwords) are replaced by ``"***"`` before anything is written.
"""

from .log import AuditEntry, AuditLog, SqliteAuditLog, scrub

__all__ = ["AuditEntry", "AuditLog", "SqliteAuditLog", "scrub"]
