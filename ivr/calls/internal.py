"""Internal events (timers, CRM results, ACD outcomes) that go through the same per-channel dispatcher as
ARI events, so everything that happens to one call is handled in one order, one at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ari import Event


@dataclass(frozen=True)
class Internal(Event):
    key: str = ""
    payload: Any = field(default=None)

    @property
    def channel_id(self) -> str | None:
        return self.key or None


def internal(key: str, payload: Any) -> Internal:
    return Internal(type="Internal", key=key, payload=payload)
