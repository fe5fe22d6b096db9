"""Auto-pause protection: a miss the agent did not cause never counts, a systemic failure pauses nobody.

Pure (no I/O, no clock of its own): every method takes ``now`` from the router's clock. The rule, as
implemented (``docs/acd.md`` states it for operators):

* **Outcomes.** An offer answered is a success; an offer failed (with or without agent fault) and the
  router's ring-timeout safety net are failures. A cancel (caller abandoned, agent paused / logged out /
  unregistered, call withdrawn) is not an outcome.
* **(a)** A failure without agent fault (ARI / originate timeout, congestion reported as ours) never
  counts as a miss; it is still a failure in the window (a systemic signal).
* **(b)** A failure of agent A is *systemic* when, once it is recorded, either
  - *share*: the offers to agents other than A that ended in the last ``window`` s are at least
    ``min_offers`` and at least ``systemic_share`` of them failed (A's own misses cannot make the system
    look broken, so one absent agent is still paused), or
  - *burst*: at least ``burst_agents`` distinct agents failed in the last ``burst_window`` s and at least
    ``systemic_share`` of the offers that ended in those seconds failed (many agents missing within the
    same seconds while the others answer is a coincidence of genuine misses, not a storm).
  A systemic miss does not count: the agent's ``misses`` is not incremented (the call still records the
  miss, so it prefers another agent). Misses counted in the ``burst_window`` s before are refunded and
  auto-pauses made in those seconds are lifted (if the agent is still in that pause), so the first agents
  hit by a storm are not left paused either. Ring timeouts due in the same router step are all recorded
  before any of them is judged.
* **(c)** At most ``max_per_minute`` auto-pauses across all agents in any 60 s ((t-60, t]). A pause held
  back by that bound leaves the miss counted: the agent is paused at its next counted miss once the
  budget allows. ``max_per_minute: 0`` disables auto-pause.

Memory is bounded whatever the traffic: outcomes are counted in per-second buckets (at most
``window`` + 1 of them, each holding per-agent counters), the burst and refund records are trimmed by
time and capped.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ConfigError

PAUSE_BUDGET_SPAN = 60.0  #: seconds over which ``max_per_minute`` is counted
_MAX_COUNTED = 4096  #: cap on remembered counted misses (refund candidates); far above any real rate


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class AutoPausePolicy:
    """Knobs of the rule above (config keys under ``acd: auto_pause:``)."""

    window: float = 60.0  #: seconds of offer outcomes the failure share is computed over
    systemic_share: float = 0.5  #: failure share (0 < x <= 1) at or above which failures are systemic
    min_offers: int = 8  #: offers (of other agents) needed in ``window`` before the share is trusted
    burst_window: float = 10.0  #: seconds of the burst rule, of refunds and of pause lifting
    burst_agents: int = 3  #: distinct agents failing within ``burst_window`` that can mark a burst
    max_per_minute: int = 2  #: auto-pauses across all agents in any 60 s (0 = never auto-pause)

    def __post_init__(self) -> None:
        w = "acd.auto_pause"
        if not _is_num(self.window) or self.window <= 0:
            raise ConfigError(f"{w}: window must be > 0 seconds, got {self.window!r}")
        if not _is_num(self.systemic_share) or not 0 < self.systemic_share <= 1:
            raise ConfigError(f"{w}: systemic_share must be a number in (0, 1], got {self.systemic_share!r}")
        if not _is_int(self.min_offers) or self.min_offers < 1:
            raise ConfigError(f"{w}: min_offers must be an integer >= 1, got {self.min_offers!r}")
        if not _is_num(self.burst_window) or self.burst_window <= 0:
            raise ConfigError(f"{w}: burst_window must be > 0 seconds, got {self.burst_window!r}")
        if self.burst_window > self.window:
            raise ConfigError(f"{w}: burst_window ({self.burst_window!r}) must not exceed window "
                              f"({self.window!r})")
        if not _is_int(self.burst_agents) or self.burst_agents < 2:
            raise ConfigError(f"{w}: burst_agents must be an integer >= 2 (1 would suspend auto-pause on "
                              f"every miss), got {self.burst_agents!r}")
        if not _is_int(self.max_per_minute) or self.max_per_minute < 0:
            raise ConfigError(f"{w}: max_per_minute must be an integer >= 0, got {self.max_per_minute!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AutoPausePolicy:
        """From ``acd: auto_pause:`` (``None`` or ``{}`` = defaults); unknown keys are rejected."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError(f"acd.auto_pause: expected a mapping, got {type(d).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ConfigError(f"acd.auto_pause: unknown key(s) {sorted(map(str, unknown))}; "
                              f"allowed: {sorted(allowed)}")
        return cls(**dict(d))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AutoPauseState:
    """Read-only view for metrics and logs (``Router.auto_pause_state()``)."""

    suspended: bool  #: a miss now would not count (share or burst rule, over all agents)
    reason: str  #: why it is suspended ("" when not)
    failure_share: float  #: failed / ended offers in ``window`` (0.0 when none ended)
    offers_in_window: int  #: offers that ended (answered or failed) in ``window``
    failing_agents: int  #: distinct agents with a failed offer in ``burst_window``
    pauses_in_last_minute: int  #: auto-pauses made in the last 60 s (lifted ones included)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MissVerdict:
    """What the guard says about one failed offer (see ``MissGuard.judge``)."""

    counts: bool  #: the miss counts toward auto-pause
    systemic: str  #: why the failure is systemic ("" when it is not)
    refunds: tuple[tuple[str, int], ...] = ()  #: (agent, misses) counted in the burst window, to give back
    lifts: tuple[tuple[str, float], ...] = ()  #: (agent, pause time) auto-pauses in the burst window, to lift


class _Bucket:
    __slots__ = ("agents", "failed", "sec", "total")

    def __init__(self, sec: int) -> None:
        self.sec = sec
        self.total = 0
        self.failed = 0
        self.agents: dict[str, list[int]] = {}  # agent -> [total, failed]


class MissGuard:
    """Sliding-window record of offer outcomes; answers "does this miss count?" and "may we pause now?"."""

    def __init__(self, policy: AutoPausePolicy | None = None) -> None:
        self.policy = policy or AutoPausePolicy()
        self._buckets: deque[_Bucket] = deque()
        self._total = 0
        self._failed = 0
        self._by_agent: dict[str, list[int]] = {}  # agent -> [total, failed] over the window
        self._failing: OrderedDict[str, float] = OrderedDict()  # agent -> last failure, oldest first
        self._counted: deque[tuple[float, str]] = deque(maxlen=_MAX_COUNTED)  # counted misses (refundable)
        self._pauses: deque[float] = deque()  # auto-pause times, last 60 s (budget)
        self._recent_pauses: deque[tuple[float, str]] = deque()  # auto-pauses in burst_window (liftable)

    # ------------------------------------------------------------------ recording
    def success(self, agent_id: str, now: float) -> None:
        """An offer to ``agent_id`` was answered."""
        self._add(agent_id, now, failed=False)

    def failure(self, agent_id: str, now: float) -> None:
        """An offer to ``agent_id`` failed (agent fault or not, or the ring-timeout safety net)."""
        self._add(agent_id, now, failed=True)
        self._failing.pop(agent_id, None)
        self._failing[agent_id] = now

    def _add(self, agent_id: str, now: float, *, failed: bool) -> None:
        self._trim(now)
        sec = math.floor(now)
        b = self._buckets[-1] if self._buckets and self._buckets[-1].sec >= sec else None
        if b is None:
            b = _Bucket(sec)
            self._buckets.append(b)
        f = int(failed)
        b.total += 1
        b.failed += f
        self._total += 1
        self._failed += f
        for counts in (b.agents, self._by_agent):
            ab = counts.get(agent_id)
            if ab is None:
                counts[agent_id] = [1, f]
            else:
                ab[0] += 1
                ab[1] += f

    def _trim(self, now: float) -> None:
        p = self.policy
        cutoff = now - p.window
        buckets = self._buckets
        while buckets and buckets[0].sec + 1 <= cutoff:  # every outcome of the bucket is older
            b = buckets.popleft()
            self._total -= b.total
            self._failed -= b.failed
            for aid, (t, f) in b.agents.items():
                ab = self._by_agent[aid]
                ab[0] -= t
                ab[1] -= f
                if ab[0] <= 0:
                    del self._by_agent[aid]
        bcut = now - p.burst_window
        failing = self._failing
        while failing:
            aid, t = next(iter(failing.items()))
            if t > bcut:
                break
            del failing[aid]
        for dq in (self._counted, self._recent_pauses):
            while dq and dq[0][0] <= bcut:
                dq.popleft()
        while self._pauses and self._pauses[0] <= now - PAUSE_BUDGET_SPAN:
            self._pauses.popleft()

    # ------------------------------------------------------------------ questions
    def _share_why(self, total: int, failed: int, who: str = "") -> str:
        """Share rule: why the failures are systemic ("" when they are not)."""
        p = self.policy
        if total >= p.min_offers and failed >= p.systemic_share * total:
            return f"systemic: {failed}/{total} offers{who} failed in the last {p.window:g}s"
        return ""

    def _burst_why(self, failing: int, recent: tuple[int, int]) -> str:
        """Burst rule: ``failing`` distinct agents, ``recent`` = (ended, failed) offers in burst_window."""
        p = self.policy
        bt, bf = recent
        if failing >= p.burst_agents and bt and bf >= p.systemic_share * bt:
            return (f"systemic: {failing} agents failed offers within {p.burst_window:g}s "
                    f"({bf}/{bt} offers failed)")
        return ""

    def _recent_counts(self, now: float) -> tuple[int, int]:
        cut = now - self.policy.burst_window
        t = f = 0
        for b in reversed(self._buckets):
            if b.sec + 1 <= cut:
                break
            t += b.total
            f += b.failed
        return t, f

    def judge(self, agent_id: str, now: float, *, agent_fault: bool) -> MissVerdict:
        """Rule (a)/(b) for a failure already recorded with ``failure``. A counted miss is remembered for
        a possible refund; a systemic verdict hands back the refunds and lifts due (once)."""
        self._trim(now)
        total, failed = self._total, self._failed
        own = self._by_agent.get(agent_id)
        if own is not None:  # the agent's own outcomes cannot make the system look broken
            total, failed = total - own[0], failed - own[1]
        why = (self._share_why(total, failed, " to other agents")
               or self._burst_why(len(self._failing), self._recent_counts(now)))
        if why:
            per: dict[str, int] = {}
            for _, aid in self._counted:
                per[aid] = per.get(aid, 0) + 1
            lifts = tuple((aid, t) for t, aid in self._recent_pauses)
            self._counted.clear()
            self._recent_pauses.clear()
            return MissVerdict(False, why, tuple(per.items()), lifts)
        if agent_fault:
            self._counted.append((now, agent_id))
        return MissVerdict(agent_fault, "")

    def pause_refusal(self, now: float) -> str:
        """Rule (c): "" if an auto-pause may happen now, else why not."""
        self._trim(now)
        m = self.policy.max_per_minute
        if m == 0:
            return "auto-pause disabled (max_per_minute: 0)"
        if len(self._pauses) >= m:
            return f"{len(self._pauses)} auto-pauses in the last {PAUSE_BUDGET_SPAN:g}s (max_per_minute: {m})"
        return ""

    def paused(self, agent_id: str, now: float) -> None:
        """An auto-pause was made at ``now`` (same value as the agent's ``state_since``)."""
        self._pauses.append(now)
        self._recent_pauses.append((now, agent_id))

    def state(self, now: float) -> AutoPauseState:
        """Read-only (nothing is trimmed: the router's next operation does that). ``suspended`` means no
        agent's miss would count now: the burst rule holds, or the share rule holds for every agent once
        its own offers are left out (so one absent agent failing half the offers does not show as a
        suspension, exactly as its misses still count)."""
        p = self.policy
        cut = now - p.window
        total, failed = self._total, self._failed
        gone: dict[str, list[int]] = {}  # what a trim at ``now`` would drop
        for b in self._buckets:
            if b.sec + 1 > cut:
                break
            total -= b.total
            failed -= b.failed
            for aid, (t, f) in b.agents.items():
                g = gone.setdefault(aid, [0, 0])
                g[0] += t
                g[1] += f
        bcut = now - p.burst_window
        failing = sum(1 for t in self._failing.values() if t > bcut)
        why = self._share_why(total, failed)
        if why:  # the share rule must hold for every agent, each judged without its own offers
            for aid, (t, f) in self._by_agent.items():
                g = gone.get(aid, (0, 0))
                t, f = t - g[0], f - g[1]
                if t > 0 and not self._share_why(total - t, failed - f):
                    why = ""
                    break
        why = why or self._burst_why(failing, self._recent_counts(now))
        return AutoPauseState(
            suspended=bool(why), reason=why, failure_share=failed / total if total else 0.0,
            offers_in_window=total, failing_agents=failing,
            pauses_in_last_minute=sum(1 for t in self._pauses if t > now - PAUSE_BUDGET_SPAN))
