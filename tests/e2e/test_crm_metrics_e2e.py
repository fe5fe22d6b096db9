"""The CRM figures ops see (ivr_crm_lookup_seconds, ivr_crm_errors_total, read from the app's real /metrics
endpoint) count what real calls' lookups did, on the real Asterisk with sipp callers presenting real numbers:
the embedded CRM up (found, not found, withheld), an HTTP CRM that answers after the budget (timeout), an
HTTP CRM whose port is closed (connect errors, then the circuit breaker skipping it)."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from ivr.sim.ports import free_tcp_port
from ivr.sim.sipp import SippCaller, SippProcess
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

VIP, UNKNOWN = "+442079460001", "+442079469999"


async def _call(cfg, number: str) -> None:
    """A short call on the test flow `quick` (DID 300): press 1, hear a digit, the app hangs up."""
    call = SippCaller("300", steps=[("pause", 600), ("dtmf", "1")], end="wait_bye", caller_number=number)
    r = await asyncio.to_thread(SippProcess(call, cfg.asterisk.sip_port, 30).wait)
    assert r.ok, r.stderr


async def _scrape(cfg) -> dict[tuple[str, frozenset], float]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{cfg.http.port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(x.name, frozenset(x.labels.items())): x.value
            for fam in text_string_to_metric_families(text) for x in fam.samples}


def _v(samples, name, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _crm(samples, prefix: str) -> dict[tuple, float]:
    """Every non-zero sample of a CRM family, as {(name, sorted labels): value}."""
    return {(n, tuple(sorted(lab))): v for (n, lab), v in samples.items() if n.startswith(prefix) and v}


async def _lookups_done(app, n: int) -> None:
    await wait_for(lambda: app.crm.stats.lookups >= n and not app.sessions, 15, what=f"{n} CRM lookups")


async def test_embedded_crm_lookups_are_counted_by_status(flow_cfg):
    cfg = flow_cfg
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _call(cfg, VIP)
        await _call(cfg, UNKNOWN)
        await _call(cfg, "anonymous")
        await _lookups_done(app, 3)
        await assert_no_leaks(ari)
        s = await _scrape(cfg)
    for status in ("found", "not_found", "anonymous"):
        assert _v(s, "ivr_crm_lookup_seconds_count", backend="sqlite", status=status) == 1, status
        # an embedded lookup is fast: well inside the first buckets
        assert _v(s, "ivr_crm_lookup_seconds_bucket", backend="sqlite", status=status, le="0.1") == 1, status
    assert sum(v for (n, _), v in _crm(s, "ivr_crm_lookup_seconds_count").items()) == 3
    assert not _crm(s, "ivr_crm_errors_total")          # nothing failed


@pytest.fixture
async def slow_crm():
    """A real HTTP CRM on loopback that answers, but only after 2 s (well past the lookup budget)."""
    async def handler(request):
        await asyncio.sleep(2)
        return web.json_response({"id": "C1", "name": "Late"})
    app = web.Application()
    app.router.add_get("/customers", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


def _http_cfg(flow_cfg, tmp_path, url: str, **http):
    crm = {"backend": "http", "default_region": "GB", "budget_ms": 500,
           "http": {"url": url + "/customers?phone={e164}", "timeout_ms": 300, **http},
           "history": {"path": str(tmp_path / "hist.sqlite")}}
    return dataclasses.replace(flow_cfg, crm=crm)


async def test_a_slow_http_crm_shows_as_timeouts(flow_cfg, slow_crm, tmp_path):
    cfg = _http_cfg(flow_cfg, tmp_path, slow_crm)
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await _call(cfg, VIP)
        await _lookups_done(app, 1)
        await assert_no_leaks(ari)
        s = await _scrape(cfg)
    assert _crm(s, "ivr_crm_lookup_seconds_count") == {
        ("ivr_crm_lookup_seconds_count", (("backend", "http"), ("status", "timeout"))): 1}
    assert _crm(s, "ivr_crm_errors_total") == {
        ("ivr_crm_errors_total", (("backend", "http"), ("kind", "timeout"))): 1}
    # the caller waited the request timeout (300 ms), not the CRM's 2 s
    took = _v(s, "ivr_crm_lookup_seconds_sum", backend="http", status="timeout")
    assert 0.25 <= took < 0.6, took
    assert _v(s, "ivr_crm_lookup_seconds_bucket", backend="http", status="timeout", le="0.5") == 1


async def test_a_down_http_crm_shows_as_connect_errors_then_circuit_open(flow_cfg, tmp_path):
    closed = free_tcp_port()            # nothing listens there: every request is refused
    cfg = _http_cfg(flow_cfg, tmp_path, f"http://127.0.0.1:{closed}",
                    breaker={"failure_threshold": 2, "cooldown_seconds": 300})
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        for n in (1, 2, 3):
            await _call(cfg, VIP if n != 2 else UNKNOWN)
            await _lookups_done(app, n)
        await assert_no_leaks(ari)
        s = await _scrape(cfg)
    assert _crm(s, "ivr_crm_lookup_seconds_count") == {
        ("ivr_crm_lookup_seconds_count", (("backend", "http"), ("status", "error"))): 2,
        ("ivr_crm_lookup_seconds_count", (("backend", "http"), ("status", "circuit_open"))): 1}
    assert _crm(s, "ivr_crm_errors_total") == {
        ("ivr_crm_errors_total", (("backend", "http"), ("kind", "connect"))): 2,
        ("ivr_crm_errors_total", (("backend", "http"), ("kind", "circuit_open"))): 1}
