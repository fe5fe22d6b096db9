"""The janitor: a periodic reconcile between what the app claims and what Asterisk holds, so that nothing
outlives its call whatever failed on the way (a REST request that timed out during a teardown, a bridge
created while its call was already ending, an event lost in a reconnect).

Every ``interval`` seconds (while ARI is connected) it lists Asterisk's channels and bridges and compares:
* a bridge ``call-*`` that no live conversation of the app holds -> destroyed;
* an agent leg ``<call>-a<n>`` the ACD does not track, or a leg the app dialled (a transfer target
  ``<caller>-t<n>``, a callback's customer ``<task>-a<n>-t<m>``) nobody tracks -> hung up (after a restart
  such a leg may still ring outside Stasis);
* a channel in our Stasis app that no session and no agent leg owns, with no event of its own still
  waiting to be handled -> hung up;
* a session, agent leg or queued call of the app whose channel is gone from Asterisk -> ended as if its
  ChannelDestroyed had arrived (agents to wrap-up, records written, the waiting entry removed).
Nothing is touched the first time it looks wrong: only what was already a suspect in the previous sweep
(so at least ``interval`` seconds later), which keeps the janitor out of the way of calls being set up.
``plan_sweep`` is pure; ``Janitor`` runs it and carries out the plan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ..ari import AriError, Bridge, Channel
from .ids import AGENT_LEG, BRIDGE_PREFIX, DIALLED_LEG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claims:
    """What the app holds right now."""

    sessions: frozenset[str]            # caller channels with a session
    legs: frozenset[str]                # agent legs the ACD tracks
    queued: frozenset[str]              # caller channels the ACD has waiting / ringing / talking
    bridges: frozenset[str]             # bridges of live conversations


@dataclass(frozen=True)
class SweepPlan:
    destroy_bridges: tuple[str, ...] = ()
    hangup: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()          # ids the app holds whose channel is gone from Asterisk

    def __bool__(self) -> bool:
        return bool(self.destroy_bridges or self.hangup or self.gone)


def plan_sweep(channels: Iterable[Channel], bridges: Iterable[Bridge], claims: Claims, *,
               is_ours: Callable[[Channel], bool], pending: Callable[[str], bool],
               suspects: frozenset[tuple[str, str]]) -> tuple[SweepPlan, frozenset[tuple[str, str]]]:
    """What to clean now, and the suspects to confirm at the next sweep."""
    now: set[tuple[str, str]] = set()
    live: set[str] = set()
    for c in channels:
        live.add(c.id)
        if c.id in claims.sessions or c.id in claims.legs or pending(c.id):
            continue
        if AGENT_LEG.match(c.id) or DIALLED_LEG.match(c.id) or is_ours(c):
            now.add(("channel", c.id))
    for b in bridges:
        if b.id.startswith(BRIDGE_PREFIX) and b.id not in claims.bridges:
            now.add(("bridge", b.id))
    for cid in claims.sessions | claims.legs | claims.queued:
        if cid not in live and not pending(cid):
            now.add(("gone", cid))
    confirmed = now & suspects
    plan = SweepPlan(
        destroy_bridges=tuple(sorted(i for k, i in confirmed if k == "bridge")),
        hangup=tuple(sorted(i for k, i in confirmed if k == "channel")),
        gone=tuple(sorted(i for k, i in confirmed if k == "gone")))
    return plan, frozenset(now - confirmed)


class JanitorAri(Protocol):
    async def channels(self) -> list[Channel]: ...

    async def bridges(self) -> list[Bridge]: ...

    async def hangup_quietly(self, channel_id: str, reason: str | None = None) -> bool: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...


@dataclass(frozen=True)
class JanitorDeps:
    ari: JanitorAri
    claims: Callable[[], Claims]
    is_ours: Callable[[Channel], bool]
    pending: Callable[[str], bool]              # events of this channel still waiting to be handled
    report_gone: Callable[[str], None]          # hand the app a "channel destroyed" for this id
    connected: Callable[[], bool]
    on_cleaned: Callable[[str, int], None] = lambda what, n: None   # metrics: what was cleaned


class Janitor:
    def __init__(self, deps: JanitorDeps, interval: float = 5.0) -> None:
        self.deps = deps
        self.interval = interval
        self._suspects: frozenset[tuple[str, str]] = frozenset()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.deps.connected():
                await self.sweep()

    async def sweep(self) -> SweepPlan:
        d = self.deps
        try:
            # the app's claims are read after Asterisk's lists: anything the app took on meanwhile is in
            # them, and what it let go of meanwhile is at worst a suspect for one more sweep
            channels = await d.ari.channels()
            bridges = await d.ari.bridges()
        except AriError as e:
            log.info("janitor: cannot list channels/bridges: %s", e)
            return SweepPlan()
        plan, self._suspects = plan_sweep(channels, bridges, d.claims(), is_ours=d.is_ours,
                                          pending=d.pending, suspects=self._suspects)
        if not plan:
            return plan
        log.warning("janitor: destroying %d bridges and hanging up %d channels that belong to no live call; "
                    "%d calls of the app whose channel is gone", len(plan.destroy_bridges), len(plan.hangup),
                    len(plan.gone))
        for cid in plan.gone:
            d.report_gone(cid)
        hung = destroyed = 0
        for cid in plan.hangup:
            try:
                hung += await d.ari.hangup_quietly(cid)
            except AriError as e:
                log.info("janitor: channel %s: %s", cid, e)
        for bid in plan.destroy_bridges:
            try:
                await d.ari.destroy_bridge(bid)
                destroyed += 1
            except AriError as e:
                log.info("janitor: bridge %s: %s", bid, e)
        d.on_cleaned("bridge", destroyed)
        d.on_cleaned("channel", hung)
        d.on_cleaned("call", len(plan.gone))
        return plan
