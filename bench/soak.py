"""Soak: about `--concurrent` (200) calls at once through this server for `--minutes` (10), then checks that
nothing leaked. Not a CI test: a command that prints numbers.

Each call: answer, ~1 s prompt, key 1, skill queue, a sipp agent answers, `--talk` s of talk (20 s by
default, so 200 concurrent calls need ~9 calls/s rather than a rate near the server's limit), the caller
hangs up. The rate is `concurrent / (1.5 s + talk + 0.3 s)`.

Prints a line per minute (app and Asterisk RSS, live sessions, Asterisk channels), then completed and
failed calls, leaks after the run (channels and bridges still on Asterisk via ARI; the app's sessions,
bridges and waiting calls from /metrics; agents not back to `available` and agent legs never hung up),
and the app's RSS at start, after warm-up and at the end. Last line: `soak: ... leaks=<n> ...`.

    .venv/bin/python bench/soak.py                              # 200 concurrent, 10 minutes
    .venv/bin/python bench/soak.py --concurrent 100 --minutes 2 # short
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callcenter import (
    Bench,
    RunResult,
    app_state,
    install_signal_handlers,
    pct,
    rss_mb,
    wait_app_idle,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrent", type=int, default=200, help="target concurrent calls (default 200)")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--talk", type=float, default=20, help="talk time per call, s (default 20)")
    p.add_argument("--agents", type=int, default=400)
    p.add_argument("--log-level", default="WARNING", help="the app's log level (default WARNING)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, sipp logs, app log)")
    a = p.parse_args(argv)
    hold = 1.5 + a.talk + 0.3
    rate = round(a.concurrent / hold, 2)
    if a.agents < rate * (a.talk + 1) * 1.3:
        print(f"soak: {a.agents} agents are too few for {rate:g} calls/s of {a.talk:g} s", file=sys.stderr)
        return 2
    install_signal_handlers()
    with Bench(agents=a.agents, log_level=a.log_level, keep=a.keep) as b:
        b.start_asterisk()
        b.start_app()
        rss_start = rss_mb(b.app_pid)
        b.run_calls("B", 5, 2)     # warm-up
        wait_app_idle(b, 15)
        rss_warm = rss_mb(b.app_pid)
        b.say(f"soak: {rate:g} calls/s x {a.talk:g} s talk for {a.minutes:g} min (~{a.concurrent} concurrent), "
              f"app RSS {rss_start:.1f} MB at start, {rss_warm:.1f} MB after warm-up")
        timeline: list[tuple[float, float, float]] = []
        t0 = time.monotonic()
        next_mark = [t0 + 60]

        def minute(bench: Bench, _res: RunResult) -> None:
            if time.monotonic() < next_mark[0]:
                return
            next_mark[0] += 60
            try:
                st = app_state(bench)
                chans = len(bench.ari("GET", "/channels"))
            except (OSError, ValueError) as e:
                bench.say(f"  sample failed: {e}")
                return
            app, ast = rss_mb(bench.app_pid), rss_mb(bench.ast_pid)
            timeline.append(((time.monotonic() - t0) / 60, app, ast))
            bench.say(f"  t={timeline[-1][0]:.0f} min app RSS {app:.1f} MB, Asterisk RSS {ast:.1f} MB, "
                      f"app sessions {st['sessions']:.0f}, Asterisk channels {chans}, agents {st['agents']}")

        # restore=False: what is left on Asterisk is counted below as a leak, not hung up first
        res = b.run_calls("B", rate, a.minutes * 60, talk_ms=int(a.talk * 1000), on_sample=minute, restore=False)
        st = wait_app_idle(b, 30)
        chans, bridges = b.wait_idle(5)
        rss_end = rss_mb(b.app_pid)
        not_available = sum(n for s, n in st["agents"].items() if s != "available")
        agent_legs_open = res.agent_answered - res.agent_byes
        leaks = chans + bridges + int(st["sessions"]) + int(st["bridges"]) + int(st["waiting"]) + not_available \
            + st["unregistered"] + max(0, agent_legs_open)
        growth = rss_end - (timeline[0][1] if timeline else rss_warm)
        print()
        print(f"== bench/soak.py: {a.agents} agents, app log level {a.log_level}")
        print(f"calls offered {res.offered}, completed {res.completed}, failed {res.failed} "
              f"({100 * res.completion:.2f} % completed); max concurrent calls {res.max_concurrent}")
        print(f"post-dial p50/p99 {pct(res.pdd_ms, 50):.0f}/{pct(res.pdd_ms, 99):.0f} ms; DTMF -> agent p50/p99 "
              f"{pct(res.dtmf_agent_ms, 50):.0f}/{pct(res.dtmf_agent_ms, 99):.0f} ms")
        print(f"CPU per call: Asterisk {res.cpu_ms_per_call('asterisk'):.1f} ms, app {res.cpu_ms_per_call('app'):.1f} ms; "
              f"host busy {100 * res.host_busy:.0f} %")
        print(f"left on Asterisk (ARI): {chans} channels, {bridges} bridges")
        print(f"left in the app: {st['sessions']:.0f} sessions, {st['bridges']:.0f} bridges, {st['waiting']:.0f} "
              f"waiting calls; agents {st['agents']} ({st['unregistered']} unregistered); "
              f"agent legs answered but never hung up: {agent_legs_open}")
        print("app RSS: start {:.1f} MB, after warm-up {:.1f} MB, {}end {:.1f} MB".format(
            rss_start, rss_warm, "".join(f"t={m:.0f}min {r:.1f} MB, " for m, r, _ in timeline), rss_end))
        if res.errors:
            print(f"notes: {'; '.join(res.errors)}")
        print(f"soak: completed={res.completed} failed={res.failed} leaks={leaks} rss_start_mb={rss_start:.1f} "
              f"rss_end_mb={rss_end:.1f} rss_growth_after_first_minute_mb={growth:.1f}")
        b.stop_app()
    return 0 if res.failed == 0 and leaks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
