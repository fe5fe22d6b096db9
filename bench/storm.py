"""What overload does to a server and how it comes back (used by bench/compare.py).

* `server_state`: what the server holds now: channels and bridges on Asterisk (ARI); for B the app's calls,
  bridges and waiting entries (/metrics) and every agent's state (admin API); for A app_queue's members
  and callers (`queue show` on the Asterisk CLI).
* `settle`, after every load run: what the run left, how long the server took to get back to the state it
  had before the run *on its own* (a result, printed), then what the harness restores (hangs up channels,
  destroys bridges, makes agents available / unpauses members; printed too), so the next run starts from
  the same server. `check_service` then runs a few calls at a low rate to show the server serves normally
  again (after a failed run), and says how long that took.
* `run_storm`, the overload phase: the sustainable rate R for 30 s, 1.3 R for 30 s, R for 60 s as one sipp
  load (the rate is changed live through sipp's control socket), then completion during the spike, calls
  shed (SIP 503), agents whose state changed, what is left 20 s after the storm, seconds until a 10 s window
  of calls (by start time) meets the criteria again, and CPU per call before and after.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field

from callcenter import QUEUE, Bench, Call, RunResult, pct

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MEMBER_STATUSES = ("Not in use", "In use", "Busy", "Unavailable", "Ringing", "Ring+Inuse", "On Hold", "Invalid",
                    "Unknown")


# ----------------------------------------------------------------------------------------- the server
@dataclass
class ServerState:
    scenario: str                               # A (app_queue) or B (the app)
    at: float                                   # epoch
    channels: int = 0                           # on Asterisk (ARI)
    bridges: int = 0
    agents: dict[str, str] = field(default_factory=dict)   # B: id -> 'available', 'paused:no-answer', ...
    #                                                        A: member -> 'Not in use', 'paused (In use)', ...
    sessions: float = 0.0                       # B: the app's calls, bridges, waiting entries (/metrics)
    app_bridges: float = 0.0
    waiting: float = 0.0                        # B: the app's waiting calls; A: app_queue's callers
    error: str = ""                             # a request failed: the server did not answer

    def agent_changes(self, before: ServerState) -> dict[str, tuple[str, str]]:
        return {k: (v, self.agents.get(k, "gone")) for k, v in before.agents.items() if self.agents.get(k) != v}

    def same_as(self, before: ServerState) -> bool:
        return (not self.error and (self.channels, self.bridges, self.sessions, self.app_bridges, self.waiting)
                == (before.channels, before.bridges, before.sessions, before.app_bridges, before.waiting)
                and not self.agent_changes(before))

    @property
    def leaked(self) -> int:
        """Bridges and channels on Asterisk plus the app's calls and waiting entries (A: queue callers are
        channels, already counted)."""
        n = lambda v: 0 if math.isnan(v) else int(v)     # a gauge the app does not export: shown by describe()
        return self.channels + self.bridges + n(self.sessions) + (n(self.waiting) if self.scenario == "B" else 0)

    def describe(self) -> str:
        s = f"Asterisk {self.channels} channels, {self.bridges} bridges"
        if self.scenario == "B":
            s += f"; app {self.sessions:.0f} calls, {self.app_bridges:.0f} bridges, {self.waiting:.0f} waiting"
        else:
            s += f"; app_queue {self.waiting:.0f} callers"
        return s + (f" ({self.error})" if self.error else "")


def changes_text(changes: dict[str, tuple[str, str]]) -> str:
    """'393 (available -> paused:no-answer x393)'"""
    if not changes:
        return "none"
    by = Counter(changes.values())
    return f"{len(changes)} (" + ", ".join(f"{a} -> {b} x{n}" for (a, b), n in by.most_common(4)) + \
        (", ..." if len(by) > 4 else "") + ")"


def appq_members(b: Bench) -> tuple[dict[str, str], int]:
    """app_queue's members {'PJSIP/ba0001': 'Not in use' | 'paused (In use)' ...} and callers waiting."""
    members: dict[str, str] = {}
    callers = 0
    section = ""
    for line in _ANSI.sub("", b.ast.cli(f"queue show {QUEUE}")).splitlines():
        s = line.strip()
        if s.startswith(("Members:", "Callers:")):
            section = s[0]
        elif s.startswith(("No Members", "No Callers")):
            section = ""
        elif section == "M" and s:
            name, _, rest = s.partition(" ")
            status = next((st for st in _MEMBER_STATUSES if f"({st})" in rest), "?")
            members[name] = f"paused ({status})" if "(paused" in rest else status
        elif section == "C" and re.match(r"\d+\.", s):
            callers += 1
    return members, callers


def server_state(b: Bench, scenario: str) -> ServerState:
    st = ServerState(scenario, time.time())
    try:
        st.channels, st.bridges = len(b.ari("GET", "/channels")), len(b.ari("GET", "/bridges"))
        if scenario == "B":
            m = b.metrics()
            st.sessions = m.get("ivr_active_calls", math.nan)
            st.app_bridges = m.get("ivr_active_bridges", math.nan)
            st.waiting = m.get(f'ivr_queue_calls_waiting{{queue="{QUEUE}"}}', math.nan)
            st.agents = {a["agent_id"]: a["state"] + (f":{a['pause_reason']}" if a.get("pause_reason") else "")
                         for a in b.http("GET", "/api/agents")["agents"]}
        else:
            st.agents, callers = appq_members(b)
            st.waiting = callers
    except (OSError, ValueError, KeyError) as e:
        st.error = f"{type(e).__name__}: {e}"
    return st


def restore(b: Bench, scenario: str, before: ServerState, st: ServerState) -> tuple[str, ServerState]:
    """Put back what `st` differs in from `before`: hang up channels and destroy bridges (ARI), make agents
    available again (B) or unpause members (A). Returns what was done and the state after it."""
    hung = destroyed = fixed = 0
    refused: Counter[str] = Counter()
    for _ in range(3):
        if st.same_as(before):
            break
        if st.channels > before.channels or st.bridges > before.bridges:
            try:
                h, d = b.hangup_all()
            except OSError as e:              # Asterisk's ARI does not answer: nothing more to do here
                refused[f"ARI ({type(e).__name__})"] += 1
                break
            hung, destroyed = hung + h, destroyed + d
            time.sleep(1.0)
            st = server_state(b, scenario)
        for agent, (old, new) in st.agent_changes(before).items():
            try:
                if scenario == "B" and old == "available":
                    b.http("POST", f"/api/agents/{agent}/state", {"action": "available"})
                    fixed += 1
                elif scenario == "A" and new.startswith("paused") and not old.startswith("paused"):
                    b.ast.cli(f"queue unpause member {agent} queue {QUEUE}")
                    fixed += 1
            except (urllib.error.HTTPError, OSError):
                refused[new] += 1
        deadline = time.monotonic() + 10
        while not (st := server_state(b, scenario)).same_as(before) and time.monotonic() < deadline:
            time.sleep(0.5)
    did = []
    if hung or destroyed:
        did.append(f"{hung} channels hung up, {destroyed} bridges destroyed")
    if fixed:
        did.append(f"{fixed} agents " + ("made available" if scenario == "B" else "unpaused"))
    if refused:
        did.append("refused for " + ", ".join(f"{n} {s}" for s, n in refused.items()))
    return "; ".join(did) or "nothing", st


@dataclass
class Aftermath:
    before: ServerState
    left: ServerState             # `leak_at` s after the load ended (or when it was back, if earlier)
    back_after: float | None      # s from the end of the load until it was as before on its own
    waited: float                 # s it was watched for that (back_after None: not within them)
    restored: str = ""            # what the harness did ("" when nothing was needed)
    final: ServerState | None = None
    harness_left: int | None = None   # calls up when the overload guard stopped the caller sipp

    @property
    def clean(self) -> bool:
        return self.final is not None and self.final.same_as(self.before)

    @property
    def changes(self) -> dict[str, tuple[str, str]]:
        return self.left.agent_changes(self.before)

    @property
    def paused(self) -> int:
        return sum(1 for old, new in self.changes.values() if new.startswith("paused") and not old.startswith("paused"))

    def lines(self, leak_at: float) -> list[str]:
        if self.back_after is not None and not self.restored:
            return [f"back to its state before the run {self.back_after:.0f} s after the last call ended"]
        out = []
        if self.harness_left:
            out.append(f"the overload guard stopped the caller with {self.harness_left} calls up: the harness "
                       "left those, not the server")
        out.append(f"left {leak_at:g} s after the load: {self.left.describe()}; agents changed: "
                   f"{changes_text(self.changes)}")
        out.append("back to its state before the run on its own: "
                   + (f"after {self.back_after:.0f} s" if self.back_after is not None else
                      f"no, not within {self.waited:.0f} s"))
        if self.restored:
            fin = self.final
            out.append(f"restored by the harness: {self.restored}; server as before: "
                       + ("yes" if self.clean else f"NO ({fin.describe() if fin else '?'}; agents changed: "
                          f"{changes_text(fin.agent_changes(self.before)) if fin else '?'})"))
        return out


def settle(b: Bench, scenario: str, before: ServerState, res: RunResult, *, leak_at: float = 20.0,
           timeout: float = 30.0) -> Aftermath:
    """After a run: poll until the server is as `before` on its own (at most `timeout` s after the last call
    ended), keep the state `leak_at` s after the end as what was left, then restore what still differs."""
    timeout = max(timeout, leak_at)
    back = left = None
    while True:
        st = server_state(b, scenario)
        if back is None and st.same_as(before):
            back = max(0.0, st.at - res.t_end)
        if left is None and (back is not None or st.at >= res.t_end + leak_at):
            left = st
        if back is not None or st.at >= res.t_end + timeout:
            break
        time.sleep(1.0)
    am = Aftermath(before, left or st, back, st.at - res.t_end, harness_left=res.stopped_early)
    if back is None:
        am.restored, am.final = restore(b, scenario, before, st)
    else:
        am.final = st
    return am


def check_service(b: Bench, scenario: str, before: ServerState, max_pdd: float, *, rate: float = 5,
                  seconds: float = 4, within: float = 60) -> str:
    """A few calls at a low rate until they all complete with p99 post-dial < max_pdd (at most `within` s):
    whether the server serves normally again after a failed run, and after how long."""
    t0 = time.monotonic()
    tries = []
    while True:
        res = b.run_calls(scenario, rate, seconds, restore=False)
        am = settle(b, scenario, before, res, leak_at=10, timeout=15)
        ok = res.completed == res.offered and pct(res.pdd_ms, 99) < max_pdd
        tries.append(f"{res.completed}/{res.offered} p99 {pct(res.pdd_ms, 99):.0f} ms"
                     + (f" ({am.restored} restored)" if am.restored else ""))
        if ok or time.monotonic() - t0 > within:
            break
        time.sleep(5)
    took = time.monotonic() - t0
    if ok and len(tries) == 1:
        verdict = "serves normally (first try)"
    elif ok:
        verdict = f"serves normally again at try {len(tries)}, {took:.0f} s after the first"
    else:
        verdict = f"STILL DEGRADED after {took:.0f} s: later runs do not start from the same server"
    return f"check {rate:g} calls/s x {seconds:g} s: {verdict}: " + "; ".join(tries)


# ------------------------------------------------------------------------------------------- the storm
def storm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storm-rate", type=float,
                   help="skip the search (and the memory phases): run only the storm at this rate R")
    p.add_argument("--no-storm", action="store_true", help="skip the overload phase")
    p.add_argument("--storm-seconds", type=lambda s: [float(x) for x in s.split(",")], default=None,
                   help="the storm's three segments, s: R, the spike, R again (default 30,30,60; --quick 10,10,30)")
    p.add_argument("--storm-factor", type=float, default=1.3, help="the spike's rate, x R (default 1.3)")
    p.add_argument("--storm-window", type=float, default=10,
                   help="window (s) of calls by start time that must meet the criteria again (default 10)")


@dataclass
class Storm:
    scenario: str
    rate: float
    segs: list[tuple[float, float]]
    res: RunResult
    after: Aftermath
    window: float
    min_completion: float          # fraction
    max_pdd: float
    shed_app: list[float] | None   # B: ivr_calls_shed_total at each segment start and at the end (None: no metric)
    peak_paused: float | None      # most agents paused at a scrape during the storm (B)

    def seg_calls(self, i: int) -> list[Call]:
        m = self.res.marks + [math.inf]
        return [c for c in self.res.calls if m[i] <= c.start < m[i + 1]] if i < len(self.res.marks) else []

    @property
    def complete(self) -> bool:
        return len(self.res.marks) == 3

    @property
    def spike_pct(self) -> float:
        calls = self.seg_calls(1)
        return 100 * sum(c.completed for c in calls) / len(calls) if calls else math.nan

    def window_ok(self, calls: list[Call]) -> bool:
        pdd = [c.pdd_ms for c in calls if c.pdd_ms is not None]
        return (bool(calls) and sum(c.completed for c in calls) >= self.min_completion * len(calls)
                and pct(pdd, 99) < self.max_pdd)

    def windows(self) -> list[tuple[float, bool]]:
        """(offset from the spike's end, meets the criteria) of every `window` s of calls (by start time)
        of the last segment, in 1 s steps."""
        if not self.complete:
            return []
        calls = self.seg_calls(2)
        t0, end = self.res.marks[2], self.res.marks[2] + self.segs[2][0]
        out = []
        off = 0.0
        while t0 + off + self.window <= end + 1e-6:
            out.append((off, self.window_ok([c for c in calls if t0 + off <= c.start < t0 + off + self.window])))
            off += 1.0
        return out

    @property
    def recover_s(self) -> float | None:
        """Offset of the first window after the spike that meets the criteria; None: never."""
        return next((off for off, ok in self.windows() if ok), None)

    @property
    def stable_s(self) -> float | None:
        """Offset from which every later window meets the criteria; None: the last one does not."""
        w = self.windows()
        if not w or not w[-1][1]:
            return None
        i = len(w)
        while i > 0 and w[i - 1][1]:
            i -= 1
        return w[i][0]

    def cpu_ms(self, x: float, y: float) -> tuple[float, dict[str, float]]:
        """Asterisk + app CPU per completed call over [x, y]: CPU in the interval over the calls it served,
        each completed call counting for the share of its life (start -> end) inside the interval."""
        parts = {who: 1000 * (_cpu_at(self.res.cpu_samples, y, who) - _cpu_at(self.res.cpu_samples, x, who))
                 for who in ("asterisk", "app") if any(who in s for _, s in self.res.cpu_samples)}
        served = sum(max(0.0, min(c.end, y) - max(c.start, x)) / (c.end - c.start)
                     for c in self.res.calls if c.completed and c.end and c.end > c.start)
        if not served:
            return math.nan, {}
        return sum(parts.values()) / served, {k: v / served for k, v in parts.items()}

    def others(self, x: float, y: float) -> float:
        """CPU of everything else on the machine over [x, y], % of one core (the harness, other users)."""
        cs = self.res.cpu_samples
        ours = {k for _, smp in cs for k in smp if k != "host"}
        d = lambda who: _cpu_at(cs, y, who) - _cpu_at(cs, x, who)
        return 100 * max(0.0, d("host") - sum(d(k) for k in ours)) / (y - x) if y > x else math.nan

    @property
    def cpu_before(self) -> tuple[float, dict[str, float]]:
        m = self.res.marks
        return self.cpu_ms(m[0], m[1]) if len(m) > 1 else (math.nan, {})

    @property
    def cpu_after(self) -> tuple[float, dict[str, float]]:
        if not self.complete:
            return math.nan, {}
        end = self.res.marks[2] + self.segs[2][0]
        return self.cpu_ms(end - self.segs[2][0] / 2, end)

    def lines(self) -> list[str]:
        s, r = self.scenario, self.res
        names = ["before (R)", f"spike ({self.segs[1][1] / self.rate:g} R)", "after (R)"]
        out = [f"storm {s}: " + ", then ".join(f"{rate:g} calls/s for {sec:g} s" for sec, rate in self.segs)
               + " (one sipp load, rate changed live)"]
        if not self.complete:
            out.append(f"  the load ended early ({len(r.marks)} of 3 segments started): {'; '.join(r.errors)}")
        for i, name in enumerate(names):
            calls = self.seg_calls(i)
            if not calls:
                continue
            done = sum(c.completed for c in calls)
            pdd = [c.pdd_ms for c in calls if c.pdd_ms is not None]
            shed = sum(c.shed for c in calls)
            extra = ""
            if shed:
                extra = (f", shed (503) {shed}, INVITE -> 503 p50/p99 "
                         f"{pct([c.shed_ms for c in calls if c.shed], 50):.0f}/"
                         f"{pct([c.shed_ms for c in calls if c.shed], 99):.0f} ms")
            if i == 1:
                extra = extra or ", shed (503) 0"
                if s == "B":
                    sa = self.shed_app
                    extra += (" (app: metric ivr_calls_shed_total not exported)" if sa is None else
                              f" (app ivr_calls_shed_total +{sa[2] - sa[1]:.0f}, whole storm +{sa[-1] - sa[0]:.0f})"
                              if len(sa) >= 4 else "")
            out.append(f"  {name:<15} {done}/{len(calls)} completed ({100 * done / len(calls):.2f} %), post-dial "
                       f"p50/p99 {pct(pdd, 50):.0f}/{pct(pdd, 99):.0f} ms{extra}")
        rec = self.recover_s
        w = self.windows()
        stable = self.stable_s
        out.append(f"  recovery        a {self.window:g} s window of calls meets the criteria again "
                   + (f"{rec:.0f} s after the spike" if rec is not None else
                      f"never in the {self.segs[2][0]:g} s after the spike")
                   + (f"; every window from {stable:.0f} s on" if stable is not None and stable != rec else "")
                   + (f"; the windows meeting them: {sum(ok for _, ok in w)} of {len(w)}" if rec is not None
                      and stable != rec else ""))
        (cb, pb), (ca, pa) = self.cpu_before, self.cpu_after
        part = lambda p: " + ".join(f"{k} {v:.1f}" for k, v in p.items())
        m = r.marks + [math.nan] * 2
        end = m[2] + self.segs[2][0]
        out.append(f"  CPU per call    before {cb:.1f} ms ({part(pb)}), after {ca:.1f} ms ({part(pa)}; last "
                   f"{self.segs[2][0] / 2:g} s); everything else on the machine: {self.others(m[0], m[1]):.0f} % "
                   f"of one core before, {self.others(m[1], m[2]):.0f} % in the spike, "
                   f"{self.others(m[2], end):.0f} % after")
        out.append(f"  load            max concurrent calls {r.max_concurrent}; host CPU busy {100 * r.host_busy:.0f} % "
                   f"(everything else on the machine: {100 * r.other_cpu / max(r.wall, 1e-9):.0f} % of one core)")
        am = self.after
        out.append(f"  agents          changed state: {changes_text(am.changes)}; now paused: {am.paused}"
                   + (f"; most paused at a scrape during the storm: {self.peak_paused:.0f}"
                      if self.peak_paused is not None else ""))
        out.append(f"  left 20 s after {am.left.describe()} -> leaked {am.left.leaked}")
        out.append("  back on its own " + (f"after {am.back_after:.0f} s" if am.back_after is not None
                                           else f"no, not within {am.waited:.0f} s"))
        if am.restored:
            out.append(f"  restored        {am.restored}; server as before: {'yes' if am.clean else 'NO'}")
        if r.errors:
            out.append(f"  notes           {'; '.join(r.errors[:3])}")
        return out

    def fields(self) -> str:
        return storm_fields(self.scenario, self)


def storm_fields(scenario: str, st: Storm | None) -> str:
    k = f"storm_{scenario.lower()}_"
    if st is None:
        return " ".join(f"{k}{f}=nan" for f in ("rate", "completed_pct", "shed", "recover_s", "stable_s", "paused",
                                               "changed", "leaked", "cpu_before_ms", "cpu_after_ms"))
    rec, stable = st.recover_s, st.stable_s
    return (f"{k}rate={st.rate:g} {k}completed_pct={st.spike_pct:.2f} {k}shed={sum(c.shed for c in st.seg_calls(1))} "
            f"{k}recover_s={'never' if rec is None else f'{rec:.0f}'} "
            f"{k}stable_s={'never' if stable is None else f'{stable:.0f}'} {k}paused={st.after.paused} "
            f"{k}changed={len(st.after.changes)} {k}leaked={st.after.left.leaked} "
            f"{k}cpu_before_ms={st.cpu_before[0]:.1f} {k}cpu_after_ms={st.cpu_after[0]:.1f}")


def _cpu_at(samples: list[tuple[float, dict[str, float]]], t: float, who: str) -> float:
    """CPU seconds of `who` at epoch t, linear between the samples around it."""
    pts = [(ts, s[who]) for ts, s in samples if who in s]
    if not pts:
        return 0.0
    if t <= pts[0][0]:
        return pts[0][1]
    for (t1, v1), (t2, v2) in itertools.pairwise(pts):
        if t1 <= t <= t2:
            return v1 + (v2 - v1) * (t - t1) / (t2 - t1) if t2 > t1 else v2
    return pts[-1][1]


def app_shed_total(b: Bench) -> float | None:
    """Sum of ivr_calls_shed_total over its labels; None if the app does not export it."""
    m = b.metrics()
    if not any(f.startswith("ivr_calls_shed") for f in b.metric_families):
        return None
    return sum(v for k, v in m.items() if k.startswith("ivr_calls_shed_total"))


def run_storm(b: Bench, scenario: str, rate: float, a: argparse.Namespace) -> Storm:
    t1, t2, t3 = a.storm_seconds
    segs = [(t1, rate), (t2, round(rate * a.storm_factor, 2)), (t3, rate)]
    before = server_state(b, scenario)
    b.say(f"{scenario}: storm " + ", ".join(f"{r:g}/s for {s:g} s" for s, r in segs))
    shed: list[float | None] = []
    peak: list[float] = []

    def sample(bench: Bench, res: RunResult) -> None:
        if scenario != "B":
            return
        while len(shed) < len(res.marks):          # the app's counter at each segment start
            try:
                shed.append(app_shed_total(bench))
            except (OSError, ValueError):
                shed.append(math.nan)
        m = bench.last_metrics
        if m:
            peak.append(sum(v for k, v in m.items() if k.startswith("ivr_queue_agents_paused{")))

    res = b.run_calls(scenario, rate, 0, schedule=segs, guard=False, restore=False, on_sample=sample,
                      sample_every=0.5)
    if scenario == "B":
        try:
            shed.append(app_shed_total(b))
        except (OSError, ValueError):
            shed.append(math.nan)
    after = settle(b, scenario, before, res, leak_at=20, timeout=40)
    shed_app = None if scenario != "B" or not shed or any(v is None for v in shed) else shed
    st = Storm(scenario, rate, segs, res, after, a.storm_window, a.min_completion / 100, a.max_pdd,
               shed_app, max(peak) if peak else None)
    for line in st.lines():
        b.say(line)
    return st
