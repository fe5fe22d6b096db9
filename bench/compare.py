"""Side-by-side benchmark: the same call-center scenario on the same Asterisk, (A) pure dialplan with
app_queue and (B) this server, one after the other in one run. Finds the highest call rate each sustains
with >= 99.5 % of calls completed and p99 post-dial delay < 200 ms, confirms it with a `--duration` run
(60 s), and prints calls/s, CPU per call of Asterisk and of the app, p50/p95/p99 of DTMF -> agent answer
and of post-dial delay, max concurrent calls and the app's memory per waiting call. After every run it says
what the run left on the server and how long the server took to get back to its state before the run, then
restores that state (printed) so a probe that overloads does not poison the next one. Then the overload
phase (bench/storm.py): R for 30 s, 1.3 R for 30 s, R for 60 s, R the rate found.
Last line: `ratio=<B cps / A cps> ... storm_a_... storm_b_...`.

Scenario (both): a sipp caller dials, is answered, hears a ~1 s prompt, presses 1, is queued, a sipp
auto-answer agent picks up, ~3 s of talk, the caller hangs up. See bench/callcenter.py and bench/README.md.

    .venv/bin/python bench/compare.py            # full run (~20-30 min on 2 cores)
    .venv/bin/python bench/compare.py --quick    # smoke run (~4 min, low rates, short storm)
    .venv/bin/python bench/compare.py --rates 20,40,60 --duration 30
    .venv/bin/python bench/compare.py --only B --storm-rate 40   # only the storm, at 40 calls/s (~3 min)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callcenter import (
    Bench,
    RunResult,
    install_signal_handlers,
    pct,
    profile_summary,
    start_profiler,
    traced_waiting_memory,
    wait_app_idle,
    waiting_memory,
)
from storm import (
    ServerState,
    check_service,
    restore,
    run_storm,
    server_state,
    settle,
    storm_args,
    storm_fields,
)


class Search:
    """Step the rate up (x factor) until a probe fails, bisect between the last pass and the first fail,
    then confirm the best rate with a long run (stepping down 10 % if the confirmation fails)."""

    def __init__(self, b: Bench, scenario: str, args: argparse.Namespace, baseline: ServerState) -> None:
        self.b, self.scenario, self.args, self.baseline = b, scenario, args, baseline
        self.probes: list[RunResult] = []
        self.story: list[str] = []         # every run and what it left, for the report
        self.deadline = time.monotonic() + 60 * args.max_minutes

    def run(self, rate: float, duration: float) -> RunResult:
        """One run, then what it left and how long the server took to come back to the baseline on its own
        (printed), then the baseline restored (printed); after a failed run, a few calls at a low rate show
        whether the server serves normally again, so the next run starts from the same server."""
        res = self.b.run_calls(self.scenario, rate, duration, restore=False)
        passed = self.ok(res)
        self.b.say(("PASS " if passed else "FAIL ") + res.line())
        am = settle(self.b, self.scenario, self.baseline, res, timeout=30)
        notes = am.lines(20)
        if not passed:
            notes.append(check_service(self.b, self.scenario, self.baseline, self.args.max_pdd))
        for n in notes:
            self.b.say(f"  {n}")
        self.story.append(f"{'PASS' if passed else 'FAIL'} {rate:g}/s {duration:g} s: {100 * res.completion:.1f} % "
                          f"completed, p99 post-dial {pct(res.pdd_ms, 99):.0f} ms" + (f", shed {res.shed}" if res.shed
                                                                                       else "")
                          + "".join(f"\n      {n}" for n in notes))
        return res

    def ok(self, res: RunResult) -> bool:
        return res.ok(self.args.min_completion / 100, self.args.max_pdd)

    def probe(self, rate: float) -> bool:
        res = self.run(rate, self.args.probe)
        self.probes.append(res)
        return self.ok(res)

    def find(self) -> tuple[float | None, RunResult | None]:
        a = self.args
        lo = hi = None
        if a.rates:
            for r in a.rates:
                if self.probe(r):
                    lo = r
                else:
                    hi = r
                    break
        else:
            r = a.start_rate
            while r <= a.max_rate and time.monotonic() < self.deadline:
                if self.probe(r):
                    lo, r = r, round(r * a.factor)
                else:
                    hi = r
                    break
            while lo is None and hi is not None and hi > 1 and time.monotonic() < self.deadline:
                r = max(1, round(hi / 2))
                if self.probe(r):
                    lo = r
                else:
                    hi = r
                    if r == 1:
                        break
            while (lo is not None and hi is not None and hi - lo > max(1.0, a.resolution * lo)
                   and time.monotonic() < self.deadline):
                mid = round((lo + hi) / 2)
                if mid in (lo, hi):
                    break
                if self.probe(mid):
                    lo = mid
                else:
                    hi = mid
        if lo is None:
            return None, None
        res = None
        while lo >= 1 and (res is None or time.monotonic() < self.deadline + 600):
            self.b.say(f"{self.scenario}: confirming {lo:g} calls/s for {a.duration:g} s")
            if a.profile and self.scenario == "B":
                start_profiler(self.b, a.duration + 5)
            res = self.run(lo, a.duration)
            if self.ok(res):
                return lo, res
            self.probes.append(res)
            if lo == 1:
                break
            lo = max(1, round(lo * 0.9))
        return None, res


def report(name: str, rate: float | None, res: RunResult | None, mem: dict | None) -> list[str]:
    if rate is None or res is None:
        return [f"{name}: no rate met the criteria" + (f" (last run: {res.line()})" if res else "")]
    ms = lambda v: f"{pct(v, 50):.0f} / {pct(v, 95):.0f} / {pct(v, 99):.0f} ms"
    lines = [
        f"{name}",
        (f"  calls/s sustained           {rate:g}  ({res.completed}/{res.offered} completed in {res.duration:g} s, "
         f"{100 * res.completion:.2f} %)"),
        f"  CPU per call  Asterisk      {res.cpu_ms_per_call('asterisk'):.2f} ms",
        "  CPU per call  app           " + (f"{res.cpu_ms_per_call('app'):.2f} ms" if res.cpu.get("app") else "-"),
        f"  CPU per call  sipp (c+a)    {res.cpu_ms_per_call('sipp-caller') + res.cpu_ms_per_call('sipp-agent'):.2f} ms",
        (f"  host CPU busy (all cores)   {100 * res.host_busy:.0f} % (everything else on the machine: "
         f"{100 * res.other_cpu / res.wall:.0f} % of one core)"),
        f"  DTMF -> agent p50/p95/p99   {ms(res.dtmf_agent_ms)}",
        f"  post-dial     p50/p95/p99   {ms(res.pdd_ms)}",
        f"  max concurrent calls        {res.max_concurrent}",
    ]
    if "asterisk" in res.rss_mb:
        lines.append(f"  Asterisk RSS start/max      {res.rss_mb['asterisk'][0]:.0f} / {res.rss_mb['asterisk'][1]:.0f} MB")
    if "app" in res.rss_mb:
        lines.append(f"  app RSS start/max           {res.rss_mb['app'][0]:.0f} / {res.rss_mb['app'][1]:.0f} MB")
    if mem:
        if "kb_per_call" in mem:
            lines.append(f"  app memory per waiting call {mem['kb_per_call']:.1f} KB of Python heap (tracemalloc, "
                         f"{mem['waiting']:.0f} callers waiting)")
        lines.append(f"  app RSS per waiting call    {mem['app_kb_per_call']:.1f} KB (RSS {mem['app_base_mb']:.1f} -> "
                     f"{mem['app_peak_mb']:.1f} MB: start-up's freed heap is reused); Asterisk RSS "
                     f"{mem['ast_kb_per_call']:.1f} KB per waiting call")
    if res.errors:
        lines.append(f"  notes: {'; '.join(res.errors)}")
    if res.other_cpu / res.wall > 0.25:
        lines.append(f"  WARNING: other processes used {100 * res.other_cpu / res.wall:.0f} % of a core during "
                     "this run: the machine was shared, this rate is low; run again on a quiet machine")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 60 agents, rates 4 and 8, short runs, storm 10,10,30 s (~4 min)")
    p.add_argument("--duration", type=float, default=60, help="confirmation run length, s (default 60)")
    p.add_argument("--probe", type=float, default=30, help="probe run length during the search, s (default 30)")
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                   help="rates to probe in order, e.g. 20,40,60 (default: search from --start-rate)")
    p.add_argument("--start-rate", type=float, default=20)
    p.add_argument("--factor", type=float, default=1.25, help="rate step while every probe passes (default x1.25)")
    p.add_argument("--max-rate", type=float, default=200)
    p.add_argument("--resolution", type=float, default=0.05, help="bisect until within this fraction (0.05)")
    p.add_argument("--agents", type=int, default=400)
    p.add_argument("--waiting", type=int, default=200,
                   help="callers for the memory-per-waiting-call phase (0: no memory phase)")
    p.add_argument("--min-completion", type=float, default=99.5, help="percent (default 99.5)")
    p.add_argument("--max-pdd", type=float, default=200, help="p99 post-dial delay limit, ms (default 200)")
    p.add_argument("--log-level", default="WARNING", help="the app's log level (default WARNING)")
    p.add_argument("--rest-websockets", type=int, default=None,
                   help="B's ari.rest_websockets (REST over N ARI websockets, 0 = HTTP); default: the app's default")
    p.add_argument("--only", choices=["A", "B"], help="run one scenario only")
    p.add_argument("--max-minutes", type=float, default=25, help="search time bound per scenario (default 25)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, sipp logs, app log)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the app during B's confirmation run and print where its CPU goes")
    p.add_argument("--cprofile", metavar="PATH",
                   help="run the app under cProfile (several times slower: its CPU figures are not comparable) and "
                        "write the profile to PATH when it stops; bench/cprofile_calls.py PATH CALLS reads it")
    storm_args(p)
    a = p.parse_args(argv)
    if a.quick:
        a.agents, a.rates, a.probe, a.duration, a.waiting = min(a.agents, 60), a.rates or [4, 8], 6, 12, 20
    a.storm_seconds = a.storm_seconds or ([10, 10, 30] if a.quick else [30, 30, 60])
    if len(a.storm_seconds) != 3:
        p.error("--storm-seconds takes three numbers: R, the spike, R again")
    install_signal_handlers()
    t0 = time.monotonic()
    out: dict[str, tuple] = {}
    stories: dict[str, list[str]] = {}
    storms: dict = {}
    with Bench(agents=a.agents, log_level=a.log_level, keep=a.keep, rest_websockets=a.rest_websockets,
               cprofile=a.cprofile) as b:
        b.start_asterisk()

        def scenario(k: str, mem: dict | None = None) -> None:
            base = clean_baseline(b, k)
            rate = res = None
            if a.storm_rate is None:
                search = Search(b, k, a, base)
                rate, res = search.find()
                stories[k] = search.story
            out[k] = (rate, res, mem)
            storm_rate = a.storm_rate or rate
            if a.no_storm:
                return
            if storm_rate:
                storms[k] = run_storm(b, k, storm_rate, a)
            else:
                b.say(f"{k}: no storm: no sustainable rate was found")

        if a.only != "B":
            b.say("A: pure dialplan + app_queue (the app is not running)")
            b.run_calls("A", 5, 2)      # warm-up
            scenario("A")
        if a.only != "A":
            b.start_app()
            b.say("B: this server (flow, CRM, skill queue, best-agent routing, metrics scraped every "
                  f"{b.scrape_interval:g} s)")
            b.run_calls("B", 5, 2)      # warm-up
            wait_app_idle(b, 15)
            mem = None
            if a.storm_rate is None and a.waiting > 0:
                mem = waiting_memory(b, a.waiting, max(10.0, min(20.0, a.waiting / 10)))
                b.say(f"app RSS growth per waiting call: {mem['app_kb_per_call']:.1f} KB")
                wait_app_idle(b, 30)
            scenario("B", mem)
            b.stop_app()
            if mem is not None:
                mem.update(traced_waiting_memory(b, a.waiting, max(10.0, min(20.0, a.waiting / 10))))
        b.stop_app()
        print()
        print(f"== bench/compare.py: {a.agents} agents, app log level {a.log_level}, criteria >= "
              f"{a.min_completion:g} % completed and p99 post-dial < {a.max_pdd:g} ms, "
              f"{(time.monotonic() - t0) / 60:.1f} min")
        names = {"A": "A  dialplan + app_queue", "B": "B  ivr app (ARI)"}
        for k, (rate, res, mem) in out.items():
            if a.storm_rate is None:
                print("\n".join(report(names[k], rate, res, mem)))
                print("  runs, and what each left on the server:")
                print("\n".join(f"    {line}" for line in stories.get(k, [])))
            else:
                print(f"{names[k]}: search skipped (--storm-rate {a.storm_rate:g})")
            if k in storms:
                print("\n".join(storms[k].lines()))
        if a.profile and hasattr(b, "profiler"):
            b.profiler.wait(60)
            print("\n".join(profile_summary(b.profile_path)))
    ra, resa, _ = out.get("A", (None, None, None))
    rb, resb, memb = out.get("B", (None, None, None))
    ratio = (rb or 0) / ra if ra else math.nan
    f = lambda r, who: r.cpu_ms_per_call(who) if r else math.nan
    print(f"ratio={ratio:.2f} a_cps={ra or 0:g} b_cps={rb or 0:g} a_ast_cpu_ms={f(resa, 'asterisk'):.2f} "
          f"b_ast_cpu_ms={f(resb, 'asterisk'):.2f} b_app_cpu_ms={f(resb, 'app'):.2f} "
          f"b_pdd_p99_ms={pct(resb.pdd_ms, 99) if resb else math.nan:.0f} "
          f"b_app_kb_per_waiting_call={memb.get('kb_per_call', math.nan) if memb else math.nan:.1f} "
          f"{storm_fields('A', storms.get('A'))} {storm_fields('B', storms.get('B'))}")
    return 0


def clean_baseline(b: Bench, scenario: str) -> ServerState:
    """The state every run of a scenario must start from: nothing on Asterisk, no call in the app, every agent
    available (B) / every app_queue member not in use and unpaused (A). Anything else is put right and said
    (e.g. agents still paused by the memory phase)."""
    st = server_state(b, scenario)
    ideal = ServerState(scenario, st.at, agents=({a: "available" for a in b.agent_ids} if scenario == "B"
                                                  else {f"PJSIP/{a}": "Not in use" for a in b.agent_ids}))
    if not st.same_as(ideal):
        did, st = restore(b, scenario, ideal, st)
        b.say(f"{scenario}: not at the baseline before the runs; restored: {did}"
              + ("" if st.same_as(ideal) else f"; STILL NOT: {st.describe()}"))
    return ideal


if __name__ == "__main__":
    sys.exit(main())
