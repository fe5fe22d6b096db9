"""Exception types shared by the CRM modules.

Pure module: imports only the standard library. Both subclass ``ValueError`` so callers that
only care about "bad input" can catch that.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["CrmConfigError", "InvalidRecord", "check_keys"]


class CrmConfigError(ValueError):
    """Invalid CRM or routing configuration; the message names the key and why."""


class InvalidRecord(ValueError):
    """A customer record (CSV row, YAML entry) failed validation; the message says why."""


def check_keys(where: str, d: Any, allowed: Collection[str]) -> Mapping[str, Any]:
    """`d` as a mapping whose keys are all in `allowed` (None -> {}); otherwise a CrmConfigError that
    names where, the unknown keys and the allowed ones. The one key check of every CRM config section."""
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise CrmConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = set(d) - set(allowed)
    if unknown:
        raise CrmConfigError(
            f"{where}: unknown key(s) {sorted(map(str, unknown))} (allowed: {sorted(allowed)})"
        )
    return d
