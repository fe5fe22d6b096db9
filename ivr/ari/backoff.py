"""Reconnect delays shared by the ARI websockets."""

from __future__ import annotations

import asyncio
import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [base/2, min(cap, base * 2**attempt)] (never a thundering herd)."""
    r = rng or random
    hi = min(cap, base * (2 ** min(attempt, 16)))
    return r.uniform(min(base / 2, hi), hi)


async def wait_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
