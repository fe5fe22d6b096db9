"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes the running app every second while real calls
happen on the real Asterisk (sipp callers, a pyVoIP agent): answered, timed out, abandoned. Then, through
Prometheus's HTTP API:

* every PromQL expression of the Grafana dashboard and of docs/metrics.md returns data (at least one finite
  sample): no panel or documented query is empty after real traffic;
* the shipped alert rules (docker/prometheus/alerts.yml) stay quiet while the queue is healthy, and
  IvrQueueUnstaffed fires for the queue whose only agent is paused while a caller waits there (and only
  for that queue), and resolves once the caller hung up;
* the contact-quality gauges (first-contact resolution, repeat callers) carry what the calls did.

For test speed the alert rules are a copy in the temp dir with every `for:` divided by 20 (1m -> 3s) and
the group interval 1 s; the expressions are the shipped ones, unchanged. Prometheus listens on 127.0.0.1 and
is terminated by its pid when the test ends, whatever happened (and, started through `setpriv --pdeathsig`,
dies with the test process if that is killed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from ivr.sim.ports import free_tcp_port
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for
from tests.unit.test_docker import PROM, _dashboard_exprs, _docs_promql, _grafana_to_promql

pytestmark = pytest.mark.e2e

PROMETHEUS = "/usr/bin/prometheus"
A, C = "+442079469901", "+442079469903"        # numbers the CRM does not know: identified by number
REPEAT_WINDOW = 20.0                          # crm.repeat_window_hours, in seconds, for the test
SPEEDUP = 20                                  # alert `for:` durations divided by this


# ------------------------------------------------------------------------------------------ Prometheus
def _seconds(d: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", d))


def fast_alerts(dst: Path) -> dict[str, float]:
    """docker/prometheus/alerts.yml copied to dst with `for:` / SPEEDUP (at least 1 s) and 1 s group
    intervals; returns {alert: for seconds}. The expressions are not touched."""
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    fors = {}
    for g in rules["groups"]:
        g["interval"] = "1s"
        for r in g["rules"]:
            if "for" in r:
                s = max(1.0, _seconds(r["for"]) / SPEEDUP)
                r["for"] = f"{int(s * 1000)}ms"
                fors[r["alert"]] = s
    dst.write_text(yaml.safe_dump(rules, sort_keys=False))
    return fors


def _spawn(d: Path, port: int) -> subprocess.Popen:
    """Prometheus with its config, storage and log in d, on 127.0.0.1:port. Through setpriv (util-linux),
    when present, it gets SIGTERM if the test process dies (the parent must be this thread: the main one)."""
    guard = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
    with open(d / "prometheus.log", "wb") as log:
        return subprocess.Popen(
            [*guard, PROMETHEUS, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)


class Prometheus:
    def __init__(self, url: str, proc: subprocess.Popen) -> None:
        self.url = url
        self.proc = proc

    async def api(self, path: str, **params) -> dict:
        async with aiohttp.ClientSession() as s, s.get(self.url + path, params=params) as resp:
            doc = await resp.json()
        assert doc.get("status") == "success", (path, params, doc)
        return doc["data"]

    async def query(self, expr: str) -> list[dict]:
        return (await self.api("/api/v1/query", query=expr))["result"]

    async def value(self, expr: str) -> float | None:
        r = await self.query(expr)
        return float(r[0]["value"][1]) if r else None

    async def alerts(self, state: str = "firing") -> list[dict]:
        return [a for a in (await self.api("/api/v1/alerts"))["alerts"] if a["state"] == state]


@pytest.fixture
def prometheus(tmp_path):
    """start(app_port) -> Prometheus scraping 127.0.0.1:<app_port>/metrics every second with the shipped
    alert rules (sped up). Terminated (then killed) by pid at teardown, whatever the test did."""
    if not Path(PROMETHEUS).is_file():
        pytest.fail(f"{PROMETHEUS} missing: scripts/install.sh installs Debian's 'prometheus' package")
    procs: list[subprocess.Popen] = []
    d = tmp_path / "prometheus"
    d.mkdir()

    async def start(app_port: int) -> Prometheus:
        fast_alerts(d / "alerts.yml")
        (d / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "ivr", "metrics_path": "/metrics", "scrape_interval": "1s",
                                "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}]}))
        port = free_tcp_port()
        proc = _spawn(d, port)
        procs.append(proc)
        prom = Prometheus(f"http://127.0.0.1:{port}", proc)

        async def ready() -> bool:
            assert proc.poll() is None, (d / "prometheus.log").read_text()
            try:
                async with aiohttp.ClientSession() as s, s.get(prom.url + "/-/ready") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, 30, 0.2, "prometheus ready")
        await wait_for(lambda: prom.value('up{job="ivr"} == 1'), 15, 0.2, "a first successful scrape")
        return prom

    try:
        yield start
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            assert p.poll() is not None


def test_speedup_only_shortens_durations(tmp_path):
    fors = fast_alerts(tmp_path / "a.yml")
    shipped = yaml.safe_load((PROM / "alerts.yml").read_text())
    fast = yaml.safe_load((tmp_path / "a.yml").read_text())
    assert [r["expr"] for g in fast["groups"] for r in g["rules"]] == \
        [r["expr"] for g in shipped["groups"] for r in g["rules"]]
    assert fors["IvrQueueUnstaffed"] == 3 and fors["IvrCallsWaitingNoAgentAvailable"] == 9


# ----------------------------------------------------------------------------------------------- calls
def _call(cfg, number: str, key: str, talk_ms: int = 0) -> SippProcess:
    """A caller on the acd flow (DID 400): key 1 billing, 2 technical; talk_ms > 0: hangs up after it,
    0: waits for the app to end the call."""
    steps = [("pause", 600), ("dtmf", key)] + ([("pause", talk_ms)] if talk_ms else [])
    call = SippCaller("400", steps=steps, caller_number=number, end="hangup" if talk_ms else "wait_bye")
    return SippProcess(call, cfg.asterisk.sip_port, 60)


async def _done(p: SippProcess) -> None:
    r = await asyncio.to_thread(p.wait)
    assert r.ok, r.stderr


#: Queries known to come back empty after real traffic, with why. Each one is a bug in what ops see; the test
#: fails as soon as one returns data (remove it from here then).
KNOWN_EMPTY: set[str] = set()   # queries expected to have no data in this scenario (none now: containment
#                                 is counted from ivr_flow_escalations_total, which every queued call feeds)


def _known_empty(expr: str) -> bool:
    return any(k in re.sub(r"\s+", " ", expr) for k in KNOWN_EMPTY)


def _queries() -> list[tuple[str, str]]:
    out = []
    for e in _dashboard_exprs():
        m = re.match(r"\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)", e)
        out.append(("dashboard", f"count by ({m.group(2)}) ({m.group(1)})" if m else _grafana_to_promql(e)))
    out += [("docs/metrics.md", e) for e in _docs_promql()]
    return out


async def _empty_queries(prom: Prometheus, queries) -> list[tuple[str, str]]:
    empty = []
    for where, q in queries:
        res = await prom.query(q)
        if not any(math.isfinite(float(r["value"][1])) for r in res):
            empty.append((where, q))
    return empty


async def test_prometheus_scrapes_real_calls_every_query_has_data_and_alerts_fire_only_when_due(
        flow_cfg, phones, prometheus):
    queues = tuple({**q, "wrap_up": 1, "max_wait": 2 if q["name"] == "technical" else 60}
                   for q in flow_cfg.queues)
    crm = {**flow_cfg.crm, "repeat_window_hours": REPEAT_WINDOW / 3600, "report_window_hours": 1,
           "report_interval_seconds": 1}
    cfg = dataclasses.replace(flow_cfg, queues=queues, crm=crm)
    phones("agent1")                                   # the only billing agent with a phone
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
        # agent3 also serves billing but has no phone here: logged out, so agent1 is billing's only staff
        await app.acd.agent_action("agent3", "logout")
        prom = await prometheus(cfg.http.port)

        # ---- healthy: A's call answered in billing, then A calls again (technical, nobody there: timeout)
        t_healthy = time.monotonic()
        await _done(_call(cfg, A, "1", 2500))
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").state.value == "available", 10)
        await _done(_call(cfg, A, "2"))
        await asyncio.sleep(4)                       # > IvrQueueUnstaffed's `for` plus scrape + evaluation
        span = math.ceil(time.monotonic() - t_healthy)
        fired = await prom.query(f'count_over_time(ALERTS{{alertstate="firing"}}[{span}s])')
        assert fired == [], f"alerts fired while healthy: {[f['metric'] for f in fired]}"
        assert await prom.alerts("firing") == []

        # ---- unhealthy: billing's only agent paused while C waits there -> IvrQueueUnstaffed (billing only)
        await app.acd.agent_action("agent1", "pause", "training")
        waiting = _call(cfg, C, "1", 12000)           # hangs up after ~12 s of waiting: abandoned

        async def unstaffed():
            return [a for a in await prom.alerts("firing") if a["labels"]["alertname"] == "IvrQueueUnstaffed"]

        firing = await wait_for(unstaffed, 11, 0.25, "IvrQueueUnstaffed firing")
        assert [a["labels"]["queue"] for a in firing] == ["billing"]
        assert firing[0]["labels"]["severity"] == "critical"
        await _done(waiting)
        await wait_for(lambda: not app.sessions, 10, what="calls over")
        await wait_for(lambda: _no(unstaffed), 10, 0.25, "IvrQueueUnstaffed resolved once nobody waits")
        await assert_no_leaks(ari)            # agent1 stays paused: the paused-by-reason panel has data

        # ---- FCR is decided once A's call-back window has passed; the reporter and a scrape follow
        q = 'ivr_queue_first_contact_calls{queue="billing",verdict="called_back"}'
        await wait_for(lambda: _is(prom, q, 1.0), REPEAT_WINDOW + 10, 0.5, "A's answered call decided")

        # ---- every dashboard and docs query returns data
        queries = _queries()
        assert len(queries) > 40
        known = [(w, e) for w, e in queries if _known_empty(e)]
        assert not known                            # containment (dashboard panel and docs query) has data now
        left: list = [(w, e) for w, e in queries if not _known_empty(e)]
        deadline = time.monotonic() + 15
        while True:
            left = await _empty_queries(prom, left)
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert not left, "queries without data after real calls:\n" + "\n".join(f"{w}: {e}" for w, e in left)
        assert await _empty_queries(prom, known) == known, "a known-empty query has data: update KNOWN_EMPTY"
        exits = {(r["metric"]["node"], r["metric"]["exit"]) for r in await prom.query(
            'ivr_flow_node_exits_total{flow="acd"} > 0')}
        # the answered caller hung up while talking to the agent: "answered" in the queue node, not a drop-off
        assert ("billing", "answered") in exits, exits
        # all three calls needed people (answered, abandoned, timed out): containment's complement counts them
        assert await prom.value('sum(ivr_flow_escalations_total{flow="acd",to="queue"})') == 3

        # ---- what Prometheus holds is what the calls did
        v = prom.value
        assert await v('ivr_queue_calls_answered_total{queue="billing"}') == 1
        assert await v('ivr_queue_calls_abandoned_total{queue="billing"}') == 1
        assert await v('ivr_queue_calls_timed_out_total{queue="technical"}') == 1
        # contact quality: A's answered call was followed by A's call to technical within the repeat window
        # (called back: FCR 0, and a repeat call there); A's first call and C's are first calls in billing.
        # C's call is in the history once its hangup is written: allow a refresh and a scrape for it.
        want = {'ivr_queue_first_contact_calls{queue="billing",verdict="called_back"}': 1,
                'ivr_queue_first_contact_calls{queue="billing",verdict="resolved"}': 0,
                'ivr_queue_first_contact_resolution_ratio{queue="billing"}': 0,
                'ivr_queue_repeat_window_calls{queue="billing",caller="first"}': 2,
                'ivr_queue_repeat_window_calls{queue="billing",caller="repeat"}': 0,
                'ivr_queue_repeat_caller_ratio{queue="billing"}': 0,
                'ivr_queue_repeat_window_calls{queue="technical",caller="repeat"}': 1,
                'ivr_queue_repeat_caller_ratio{queue="technical"}': 1}

        async def quality() -> dict:
            return {q: await v(q) for q in want}

        try:
            await wait_for(lambda: _equal(quality(), want), 10, 0.5, "contact quality in Prometheus")
        except AssertionError:
            assert await quality() == want
        assert await v('sum(ivr_crm_lookup_seconds_count{backend="sqlite",status="not_found"})') == 3
        assert await v('sum(ivr_crm_errors_total)') == 0


async def _equal(got, want) -> bool:
    return await got == want


async def _is(prom: Prometheus, expr: str, want: float) -> bool:
    return await prom.value(expr) == want


async def _no(fn) -> bool:
    return not await fn()


async def test_crm_failing_alert_fires_when_the_http_crm_is_down(flow_cfg, prometheus, tmp_path):
    """The HTTP CRM's port is closed: every caller's lookup fails (connect, then circuit open) and
    IvrCrmFailing (failure ratio > 20 % for 5 min, here 15 s) fires for backend http."""
    crm = {"backend": "http", "default_region": "GB", "budget_ms": 500,
           "http": {"url": f"http://127.0.0.1:{free_tcp_port()}/customers?phone={{e164}}", "timeout_ms": 300,
                    "breaker": {"failure_threshold": 1, "cooldown_seconds": 300}},
           "history": {"path": str(tmp_path / "hist.sqlite")}}
    cfg = dataclasses.replace(flow_cfg, crm=crm)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        prom = await prometheus(cfg.http.port)
        for number in (A, C):                       # short calls on the quick flow (DID 300)
            call = SippCaller("300", steps=[("pause", 600), ("dtmf", "1")], end="wait_bye", caller_number=number)
            await _done(SippProcess(call, cfg.asterisk.sip_port, 30))
        await wait_for(lambda: app.crm.stats.lookups >= 2, 10, what="two lookups")
        assert await prom.alerts("firing") == []           # not yet: the ratio must hold for `for`

        async def crm_failing():
            return [a for a in await prom.alerts("firing") if a["labels"]["alertname"] == "IvrCrmFailing"]

        firing = await wait_for(crm_failing, 30, 0.5, "IvrCrmFailing firing")
        assert [a["labels"]["backend"] for a in firing] == ["http"]
        kinds = {r["metric"]["kind"]: float(r["value"][1]) for r in await prom.query(
            'ivr_crm_errors_total{backend="http"} > 0')}
        assert kinds == {"connect": 1, "circuit_open": 1}
        await assert_no_leaks(ari)
