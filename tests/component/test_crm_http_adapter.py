"""HTTP CRM adapter against a real aiohttp server on 127.0.0.1 acting as the CRM.

The fake CRM can be healthy, slow (sleeps past the client timeout), down
(stopped: connection refused) or answer garbage. All traffic stays on loopback,
every test makes a bounded number of requests, and slow handlers are released
at teardown so nothing outlives its test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import pytest
from aiohttp import web

from ivr.crm.breaker import BreakerState
from ivr.crm.factory import crm_from_config
from ivr.crm.http import HttpCrm, HttpCrmConfig
from ivr.crm.model import Interaction, LookupStatus
from ivr.crm.store import SqliteCrm

SECRET = "Bearer t0p-s3cr3t-value"
TIMEOUT_MS = 300
MARGIN = 0.25  # seconds of scheduling slack allowed on a loaded 2-core CI machine
KNOWN = "+442079460001"
FRENCH = "+12125550104"
UNKNOWN = "+442079460999"

CUSTOMERS: dict[str, dict[str, Any]] = {
    KNOWN: {
        "id": "C1001",
        "attributes": {
            "name": "Victoria Sterling",
            "tier": "VIP",
            "locale": "en-GB",
            "owner": {"agent_id": "agent1"},
            "phones": ["+44 20 7946 0001"],
            "segment": "enterprise",
        },
        "relationships": {"tickets": [{"id": 5001, "title": "Invoice", "state": "open"}]},
    },
    FRENCH: {"id": "C1004", "attributes": {"name": "Élodie Martin", "tier": "standard", "locale": "fr"}},
}

MAPPING = {
    "record": "data",
    "customer_id": "id",
    "name": "attributes.name",
    "tier": {"path": "attributes.tier", "default": "standard"},
    "language": "attributes.locale",
    "preferred_agent": "attributes.owner.agent_id",
    "phones": "attributes.phones",
    "tickets": {"path": "relationships.tickets", "id": "id", "subject": "title", "status": "state"},
    "extra": {"segment": "attributes.segment"},
}


class FakeClock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


class FakeCrm:
    """A tiny CRM: GET /api/customers?phone=..., POST /api/customers/{id}/calls."""

    def __init__(self) -> None:
        self.mode = "healthy"
        self.lookups: list[web.Request] = []
        self.raw_queries: list[str] = []
        self.auth_seen: list[str | None] = []
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/customers", self.get_customer)
        app.router.add_post("/api/customers/{cid}/calls", self.post_call)
        # No access log: it would print request URLs (with phone numbers) into the test output.
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)  # port 0 first, then the same port on restart
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/customers?phone={{e164}}"

    @property
    def history_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/customers/{{customer_id}}/calls"

    async def get_customer(self, request: web.Request) -> web.StreamResponse:
        self.lookups.append(request)
        self.raw_queries.append(request.query_string)
        self.auth_seen.append(request.headers.get("Authorization"))
        mode = self.mode
        if mode == "slow":
            try:
                await asyncio.wait_for(self.release.wait(), timeout=2.0)
            except TimeoutError:
                pass
            mode = "healthy"
        if mode == "healthy":
            record = CUSTOMERS.get(request.query.get("phone", ""))
            if record is None:
                return web.json_response({"errors": ["not found"]}, status=404)
            return web.json_response({"data": record})
        if mode == "html":
            return web.Response(text="<html><body>Login</body></html>", content_type="text/html")
        if mode == "truncated_json":
            return web.Response(
                text='{"data": {"id": "C1001", "attributes": {"na', content_type="application/json"
            )
        if mode == "wrong_types":
            return web.json_response({"data": [1, 2, 3]})
        if mode == "id_wrong_type":
            return web.json_response({"data": {"id": {"oops": True}}})
        if mode == "scalar":
            return web.json_response("OK")
        if mode == "bad_fields":
            return web.json_response(
                {"data": {"id": 77, "attributes": {"name": ["x"], "tier": 5, "locale": 3}}}
            )
        if mode == "cut":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = 5000
            await resp.prepare(request)
            await resp.write(b'{"data": {"id": "C1001"')
            assert request.transport is not None
            request.transport.close()
            return resp
        if mode.startswith("status_"):
            return web.Response(status=int(mode[7:]), text="Internal error")
        raise AssertionError(mode)

    async def post_call(self, request: web.Request) -> web.Response:
        self.auth_seen.append(request.headers.get("Authorization"))
        if self.mode.startswith("status_"):
            return web.Response(status=int(self.mode[7:]))
        self.posts.append((request.match_info["cid"], await request.json()))
        return web.json_response({"ok": True}, status=201)


@pytest.fixture
async def crm_server():
    server = FakeCrm()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_config(server: FakeCrm, **overrides: Any) -> HttpCrmConfig:
    d: dict[str, Any] = {
        "url": server.url,
        "timeout_ms": TIMEOUT_MS,
        "auth": {"header": "Authorization", "value_env": "CRM_TOKEN"},
        "mapping": MAPPING,
        "cache": {"ttl_seconds": 300, "negative_ttl_seconds": 60, "max_entries": 100},
        "breaker": {"failure_threshold": 3, "cooldown_seconds": 30},
        "history_url": server.history_url,
    }
    d.update(overrides)
    return HttpCrmConfig.from_dict(d, env={"CRM_TOKEN": SECRET})


@pytest.fixture
async def adapter(crm_server: FakeCrm, clock: FakeClock):
    crm = HttpCrm(make_config(crm_server), clock=clock, history=SqliteCrm(":memory:"))
    yield crm
    await crm.close()


async def timed_lookup(crm: HttpCrm, number: str):
    started = time.perf_counter()
    result = await crm.lookup(number)
    return result, time.perf_counter() - started


# ------------------------------------------------------------------ healthy CRM


async def test_found_customer_is_mapped_and_auth_sent_and_number_url_encoded(
    adapter: HttpCrm, crm_server: FakeCrm
):
    r, elapsed = await timed_lookup(adapter, KNOWN)
    assert r.status is LookupStatus.FOUND and r.source == "http"
    c = r.customer
    assert c is not None
    assert (c.customer_id, c.name, c.tier, c.language, c.preferred_agent) == (
        "C1001",
        "Victoria Sterling",
        "vip",
        "en-GB",
        "agent1",
    )
    assert [t.id for t in c.open_tickets] == ["5001"]
    assert c.extra["segment"] == "enterprise"
    assert r.as_flow_vars()["customer.tier"] == "vip"
    assert crm_server.raw_queries == ["phone=%2B442079460001"]  # '+' must not arrive as a space
    assert crm_server.auth_seen == [SECRET]
    assert elapsed < TIMEOUT_MS / 1000 + MARGIN


async def test_unicode_fields_and_second_customer(adapter: HttpCrm):
    r = await adapter.lookup(FRENCH)
    assert r.customer is not None and r.customer.name == "Élodie Martin" and r.customer.language == "fr"


async def test_positive_cache_with_ttl(adapter: HttpCrm, crm_server: FakeCrm, clock: FakeClock):
    await adapter.lookup(KNOWN)
    r = await adapter.lookup(KNOWN)
    assert r.found and r.source == "http-cache"
    assert len(crm_server.lookups) == 1
    clock.t += 301
    assert (await adapter.lookup(KNOWN)).source == "http"
    assert len(crm_server.lookups) == 2
    assert adapter.stats.cache_hits == 1 and adapter.stats.cache_misses == 2


async def test_not_found_is_negatively_cached(adapter: HttpCrm, crm_server: FakeCrm, clock: FakeClock):
    r = await adapter.lookup(UNKNOWN)
    assert r.status is LookupStatus.NOT_FOUND and r.customer is None and not r.failed
    assert (await adapter.lookup(UNKNOWN)).status is LookupStatus.NOT_FOUND
    assert len(crm_server.lookups) == 1
    clock.t += 61
    await adapter.lookup(UNKNOWN)
    assert len(crm_server.lookups) == 2


async def test_concurrent_lookups_share_one_pooled_session(adapter: HttpCrm, crm_server: FakeCrm):
    results = await asyncio.gather(
        *(adapter.lookup(f"+4420794602{n:02d}") for n in range(20)), adapter.lookup(KNOWN)
    )
    assert [r.status for r in results[:-1]] == [LookupStatus.NOT_FOUND] * 20
    assert results[-1].found
    assert len(crm_server.lookups) == 21
    assert adapter._session is not None and adapter._session.connector.limit == 20  # type: ignore[union-attr]


async def test_anonymous_caller_makes_no_request(adapter: HttpCrm, crm_server: FakeCrm):
    for n in (None, "", "anonymous"):
        assert (await adapter.lookup(n)).status is LookupStatus.ANONYMOUS
    assert crm_server.lookups == []


# ------------------------------------------------------------------ slow, down, garbage


async def test_slow_crm_times_out_within_budget_and_is_not_cached(adapter: HttpCrm, crm_server: FakeCrm):
    crm_server.mode = "slow"
    r, elapsed = await timed_lookup(adapter, KNOWN)
    assert r.status is LookupStatus.TIMEOUT and r.customer is None and r.detail == "timeout"
    assert TIMEOUT_MS / 1000 - 0.05 < elapsed < TIMEOUT_MS / 1000 + MARGIN
    assert adapter.stats.failures == {"timeout": 1}
    crm_server.release.set()
    crm_server.mode = "healthy"
    assert (await adapter.lookup(KNOWN)).status is LookupStatus.FOUND  # the timeout was not cached


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("html", "bad_json"),
        ("truncated_json", "bad_json"),
        ("wrong_types", "bad_document"),
        ("id_wrong_type", "bad_document"),
        ("scalar", "bad_document"),
        ("cut", "truncated"),
        ("status_500", "http_500"),
        ("status_503", "http_503"),
        ("status_401", "http_401"),
    ],
)
async def test_garbage_answers_become_errors(adapter: HttpCrm, crm_server: FakeCrm, mode: str, detail: str):
    crm_server.mode = mode
    r, elapsed = await timed_lookup(adapter, KNOWN)
    assert r.status is LookupStatus.ERROR
    assert r.customer is None
    assert r.detail == detail
    assert elapsed < TIMEOUT_MS / 1000 + MARGIN
    assert adapter.stats.failures == {detail: 1}
    assert adapter.breaker.consecutive_failures == 1


async def test_wrong_typed_optional_fields_keep_the_customer(adapter: HttpCrm, crm_server: FakeCrm):
    crm_server.mode = "bad_fields"
    r = await adapter.lookup(KNOWN)
    assert r.found and r.customer is not None
    assert (r.customer.customer_id, r.customer.name, r.customer.tier, r.customer.language) == (
        "77",
        "",
        "standard",
        None,
    )
    assert adapter.stats.mapping_fallbacks == 3


async def test_crm_down_connection_refused(adapter: HttpCrm, crm_server: FakeCrm):
    await crm_server.stop()
    r, elapsed = await timed_lookup(adapter, KNOWN)
    assert r.status is LookupStatus.ERROR and r.customer is None
    assert r.detail in ("connect", "disconnected")
    assert elapsed < TIMEOUT_MS / 1000 + MARGIN


# ------------------------------------------------------------------ breaker, logging once


async def test_breaker_opens_skips_network_logs_once_and_recovers(
    adapter: HttpCrm, crm_server: FakeCrm, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="ivr.crm")
    crm_server.mode = "status_500"
    statuses = [(await adapter.lookup(f"+4420794603{n:02d}")).status for n in range(10)]
    assert statuses == [LookupStatus.ERROR] * 3 + [LookupStatus.CIRCUIT_OPEN] * 7
    assert len(crm_server.lookups) == 3  # the open breaker skipped the network
    assert adapter.stats.short_circuited == 7 and adapter.stats.breaker_opens == 1
    assert adapter.breaker.state is BreakerState.OPEN

    # Cooldown over, CRM still failing: one probe, no new warning.
    clock.t += 30
    assert [(await adapter.lookup(KNOWN)).status for _ in range(3)] == [
        LookupStatus.ERROR,
        LookupStatus.CIRCUIT_OPEN,
        LookupStatus.CIRCUIT_OPEN,
    ]
    assert len(crm_server.lookups) == 4

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage() and "http_500" in warnings[0].getMessage()

    # CRM back: after the cooldown the probe succeeds and lookups resume.
    crm_server.mode = "healthy"
    clock.t += 30
    r = await adapter.lookup(KNOWN)
    assert r.found and adapter.breaker.state is BreakerState.CLOSED
    assert any("reachable again" in rec.getMessage() for rec in caplog.records if rec.levelno == logging.INFO)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


async def test_outage_with_server_stopped_is_logged_once_not_per_call(
    adapter: HttpCrm, crm_server: FakeCrm, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="ivr.crm")
    await crm_server.stop()
    for _round in range(3):
        for n in range(8):
            r = await adapter.lookup(f"+4420794604{n:02d}")
            assert r.failed and r.customer is None
        clock.t += 31  # let a half-open probe try (and fail) every round
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert adapter.stats.breaker_opens == 1
    assert sum(adapter.stats.failures.values()) == 3 + 2  # threshold, then one failed probe per later round


async def test_secret_and_numbers_never_reach_the_logs(
    adapter: HttpCrm, crm_server: FakeCrm, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    await adapter.lookup(KNOWN)
    crm_server.mode = "bad_fields"
    await adapter.lookup(FRENCH)
    for mode in ("html", "status_500", "slow"):
        crm_server.mode = mode
        await adapter.lookup(f"+4420794605{len(mode):02d}")
    crm_server.release.set()
    await adapter.record_interaction(KNOWN, Interaction(at=1.0, call_id="x"))
    clock.t += 31
    crm_server.mode = "healthy"
    await adapter.lookup("+442079460777")
    assert caplog.records
    digits = re.compile(r"\d{7,}")
    for rec in caplog.records:
        if not rec.name.startswith("ivr"):
            continue
        text = rec.getMessage()
        assert "s3cr3t" not in text
        assert not digits.search(text.replace(" ", "")), text
    assert "s3cr3t" not in repr(adapter.config)


# ------------------------------------------------------------------ history


async def test_history_posted_back_and_kept_locally(adapter: HttpCrm, crm_server: FakeCrm):
    first = await adapter.lookup(KNOWN)
    assert not first.repeat_caller
    interaction = Interaction(
        at=time.time() - 60,
        call_id="call-1",
        did="+442079460900",
        ivr_path=("welcome", "menu:1"),
        keys="1",
        queue="support",
        wait_seconds=4.0,
        agent_id="agent2",
        outcome="answered",
        duration_seconds=95.0,
    )
    await adapter.record_interaction(KNOWN, interaction)
    ((cid, body),) = crm_server.posts
    assert cid == "C1001"  # customer id taken from the cached lookup
    assert (
        body["call_id"] == "call-1" and body["caller"] == KNOWN and body["ivr_path"] == ["welcome", "menu:1"]
    )
    assert body["agent_id"] == "agent2" and body["outcome"] == "answered"
    assert crm_server.auth_seen[-1] == SECRET
    assert adapter.stats.history_posts == 1

    again = await adapter.lookup(KNOWN)
    assert again.repeat_caller and again.last_agent == "agent2"
    assert [i.call_id for i in await adapter.recent_interactions(KNOWN)] == ["call-1"]


async def test_history_post_failures_are_counted_never_raised(adapter: HttpCrm, crm_server: FakeCrm):
    await adapter.lookup(KNOWN)
    crm_server.mode = "status_500"
    await adapter.record_interaction(KNOWN, Interaction(at=1.0, call_id="a"))
    await crm_server.stop()
    await adapter.record_interaction(KNOWN, Interaction(at=2.0, call_id="b"))
    assert adapter.stats.history_post_failures == 2
    # Unknown caller and a {customer_id} URL: nothing to post to.
    await adapter.record_interaction(UNKNOWN, Interaction(at=3.0, call_id="c"))
    assert adapter.stats.history_post_skipped == 1
    # The local history still has all three.
    assert len(await adapter.recent_interactions(KNOWN)) == 2


# ------------------------------------------------------------------ through the factory and the guard


async def test_factory_built_crm_on_live_call_path(crm_server: FakeCrm, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IVR_TEST_CRM_TOKEN", SECRET)
    crm = crm_from_config(
        {
            "backend": "http",
            "default_region": "GB",
            "http": {
                "url": crm_server.url,
                "auth": {"header": "Authorization", "value_env": "IVR_TEST_CRM_TOKEN"},
                "mapping": MAPPING,
            },
        }
    )
    try:
        r = await crm.lookup_caller("020 7946 0001")  # national format, as Asterisk may give it
        assert r.found and r.customer is not None and r.customer.customer_id == "C1001"
        assert (await crm.lookup_caller("Restricted")).status is LookupStatus.ANONYMOUS
        crm_server.mode = "slow"
        started = time.perf_counter()
        r = await crm.lookup_caller("+44 20 7946 0002")
        elapsed = time.perf_counter() - started
        assert r.status is LookupStatus.TIMEOUT and r.customer is None
        assert elapsed < TIMEOUT_MS / 1000 + MARGIN
        assert crm.stats.by_status["found"] == 1 and crm.stats.by_status["timeout"] == 1
        assert crm.stats.by_status["anonymous"] == 1
        assert json.dumps(crm.stats.snapshot())  # exportable as plain data
    finally:
        crm_server.release.set()
        await crm.close()
