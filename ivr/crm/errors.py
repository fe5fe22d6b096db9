"""Exception types shared by the CRM modules.

Pure module: imports nothing. Both subclass ``ValueError`` so callers that
only care about "bad input" can catch that.
"""

from __future__ import annotations

__all__ = ["CrmConfigError", "InvalidRecord"]


class CrmConfigError(ValueError):
    """Invalid CRM or routing configuration; the message names the key and why."""


class InvalidRecord(ValueError):
    """A customer record (CSV row, YAML entry) failed validation; the message says why."""
