"""Web callback requests against the running app on the real Asterisk (HTTP on the app's port): a
website's request becomes a web_callback task that reaches an agent and then the customer through the
trunk (a sipp UAS stands in for the carrier), a second request for the same number updates it; bad input
gets a clear 4xx with a stable error id and creates no task; the rate limits (per number, per client
address) answer 429; a scheduled request waits for its window, and one left unserved expires."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime

import aiohttp
import pytest

from ivr.sim.carrier import CarrierScenario, CarrierUas
from ivr.tasks import TaskKind, TaskState
from tests.e2e.callbacks_support import (
    CUSTOMER,
    OTHER,
    WEB_KEY,
    agent_free,
    api_tasks,
    asterisk_with_trunks,
    bridge_of,
    task_in,
)
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for

pytestmark = pytest.mark.e2e

asterisk = asterisk_with_trunks()     # this module's own Asterisk, with the trunk 'carrier'

AUTH = {"Authorization": f"Bearer {WEB_KEY}"}
THIRD = "+441632960999"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def web_cfg(cb_cfg, **limits):
    """cb_cfg with the website's key (and ``limits`` of the web_callbacks section)."""
    return dataclasses.replace(cb_cfg, web_callbacks={**cb_cfg.web_callbacks, "api_key": WEB_KEY, **limits})


async def post(http, url: str, body=None, data: bytes | None = None, headers=AUTH, **kw):
    """POST a request: status, JSON body, headers."""
    hdrs = {**headers, **({"Content-Type": "application/json"} if data is not None else {})}
    async with http.post(url, json=body if data is None else None, data=data, headers=hdrs, **kw) as r:
        assert r.content_type == "application/json", (r.status, await r.text())
        return r.status, await r.json(), r.headers


async def test_a_web_request_reaches_an_agent_and_the_customer_and_a_second_one_updates_it(cb_cfg, phones):
    cfg = web_cfg(cb_cfg)
    phones("agent1")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=2500, echo=True),
                         timeout=60)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            await app.acd.agent_action("agent1", "pause", "meeting")
            url = f"http://127.0.0.1:{app.web.port}/api/callbacks"
            async with http.post(url, json={"topic": "billing", "number": "01632 960777"}) as r:
                assert r.status == 401                                   # the website's key is required
            async with http.post(url, json={"topic": "billing", "number": "01632 960777"}, headers=AUTH) as r:
                assert r.status == 202, await r.text()
                first = await r.json()
            async with http.post(url, json={"topic": "billing", "number": "+44 1632 960777", "name": "Ada"},
                                 headers=AUTH) as r:
                assert r.status == 202
                again = await r.json()
            assert again["id"] == first["id"] and again["updated"] is True
            [task] = app.task_book.open_tasks()
            assert (task.kind, task.number, task.name) == (TaskKind.WEB_CALLBACK, CUSTOMER, "Ada")
            assert [c.kind for c in app.acd.router.queue_snapshot("billing").calls] == ["web_callback"]
            await app.acd.agent_action("agent1", "unpause")
            await wait_for(lambda: bridge_of(ari, task.id), 30, what="agent and customer bridged")
            done = await wait_for(lambda: task_in(app, task.id, TaskState.DONE), 30, what="the web request done")
            assert done.outcome == "answered"
            await wait_for(lambda: agent_free(app), 15, what="agent1 free again")
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+")]   # one call only
    finally:
        carrier.stop()


async def test_a_scheduled_web_request_waits_for_its_window_and_one_left_unserved_expires(cb_cfg, phones):
    """A request for "from in 4 s": agent1 is free but not offered it before then, and is after (the customer
    is called); a second request whose window closes while nobody is free expires (no call)."""
    cfg = web_cfg(cb_cfg, min_window_minutes=0.05)
    phones("agent1")
    carrier = CarrierUas(cfg.trunks[0].port, CarrierScenario(answer=200, hangup_after_ms=1500), timeout=60)
    try:
        async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10, what="registered")
            url = f"http://127.0.0.1:{app.web.port}/api/callbacks"
            now = time.time()
            body = {"topic": "billing", "number": CUSTOMER, "window": {"from": iso(now + 4), "to": iso(now + 600)}}
            async with http.post(url, json=body, headers=AUTH) as r:
                assert r.status == 202, await r.text()
                first = await r.json()
            await asyncio.sleep(2.5)
            assert app.task_book.get(first["id"]).state is TaskState.WAITING          # held back: not offered
            assert agent_free(app)
            done = await wait_for(lambda: task_in(app, first["id"], TaskState.DONE), 30,
                                  what="served once its window opened")
            offered_at = next(h.at for h in done.history if h.to_state is TaskState.OFFERED)
            assert offered_at >= now + 4
            await wait_for(lambda: agent_free(app), 15, what="agent1 free again")
            await app.acd.agent_action("agent1", "pause", "meeting")
            now = time.time()
            body = {"topic": "billing", "number": OTHER, "window": {"from": iso(now), "to": iso(now + 4)}}
            async with http.post(url, json=body, headers=AUTH) as r:
                assert r.status == 202, await r.text()
                second = await r.json()
            expired = await wait_for(lambda: task_in(app, second["id"], TaskState.EXPIRED), 15,
                                     what="the unserved request expired")
            assert expired.outcome == "window_closed" and app.acd.router.queue_snapshot("billing").calls == ()
            await assert_no_leaks(ari)
        code, err = await asyncio.to_thread(carrier.wait)
        assert code == 0, err
        assert [i.dialled.lstrip("+") for i in carrier.invites()] == [CUSTOMER.lstrip("+")]
    finally:
        carrier.stop()


def _bad_requests(now: float) -> list[tuple[str, dict | None, bytes | None, dict, int, str]]:
    """(what, JSON body, or raw body, headers, status, error_id) of requests the app must refuse."""
    ok = {"topic": "billing", "number": CUSTOMER}
    w = lambda frm, to: {**ok, "window": {"from": frm, "to": to}}
    return [
        # the website's key
        ("no key", ok, None, {}, 401, "unauthorized"),
        ("a wrong key", ok, None, {"Authorization": "Bearer not-the-key"}, 401, "unauthorized"),
        ("the key in another scheme", ok, None, {"Authorization": f"Basic {WEB_KEY}"}, 401, "unauthorized"),
        # garbage bodies
        ("not JSON", None, b'{"topic": "billing", "number": ', AUTH, 400, "invalid-json"),
        ("an empty body", None, b"", AUTH, 400, "invalid-json"),
        ("a JSON array", None, b'["billing", "+441632960777"]', AUTH, 400, "invalid-json"),
        ("NaN", None, b'{"topic": "billing", "number": NaN}', AUTH, 400, "invalid-json"),
        ("not UTF-8", None, b'{"topic": "billing", "number": "\xff\xfe"}', AUTH, 400, "invalid-json"),
        ("a body above 64 KiB", None, b'{"topic": "billing", "number": "' + b"7" * 70_000 + b'"}', AUTH,
         413, "payload-too-large"),
        # the number
        ("no number", {"topic": "billing"}, None, AUTH, 400, "invalid-number"),
        ("too short a number", {**ok, "number": "+44 16"}, None, AUTH, 400, "invalid-number"),
        ("too long a number", {**ok, "number": "07700 900 456 7"}, None, AUTH, 400, "invalid-number"),
        ("no such country code", {**ok, "number": "+999 1632 960777"}, None, AUTH, 400, "invalid-number"),
        ("words", {**ok, "number": "call me maybe"}, None, AUTH, 400, "invalid-number"),
        ("a number as a JSON number", {**ok, "number": 441632960777}, None, AUTH, 400, "invalid-number"),
        ("an anonymous number", {**ok, "number": "anonymous"}, None, AUTH, 400, "invalid-number"),
        ("a withheld number", {**ok, "number": "Withheld"}, None, AUTH, 400, "invalid-number"),
        ("an empty number", {**ok, "number": ""}, None, AUTH, 400, "invalid-number"),
        # the topic (the website never names internal queues)
        ("an unknown topic", {**ok, "topic": "payroll"}, None, AUTH, 400, "unknown-topic"),
        ("no topic", {"number": CUSTOMER}, None, AUTH, 400, "unknown-topic"),
        ("a topic that is not a string", {**ok, "topic": ["billing"]}, None, AUTH, 400, "unknown-topic"),
        ("a queue instead of a topic", {"queue": "billing", "number": CUSTOMER}, None, AUTH, 400,
         "invalid-request"),
        ("an unknown field", {**ok, "priority": 1}, None, AUTH, 400, "invalid-request"),
        ("too long a name", {**ok, "name": "A" * 65}, None, AUTH, 400, "invalid-request"),
        # the window
        ("a window that is not an object", {**ok, "window": "tomorrow"}, None, AUTH, 400, "invalid-window"),
        ("a window without its end", {**ok, "window": {"from": iso(now + 3600)}}, None, AUTH, 400,
         "invalid-window"),
        ("words as times", w("tomorrow", "later"), None, AUTH, 400, "invalid-window"),
        ("times without an offset", w("2030-12-03T09:00:00", "2030-12-03T10:00:00"), None, AUTH, 400,
         "invalid-window"),
        ("a window already over", w(iso(now - 7200), iso(now - 3600)), None, AUTH, 400, "invalid-window"),
        ("a window shorter than 15 minutes", w(iso(now + 3600), iso(now + 3660)), None, AUTH, 400,
         "invalid-window"),
        ("a window beyond 14 days", w(iso(now + 30 * 86400), iso(now + 31 * 86400)), None, AUTH, 400,
         "invalid-window"),
    ]


async def test_bad_input_gets_a_clear_error_with_a_stable_id_and_creates_no_task(cb_cfg):
    """Each bad request is refused with its 4xx and error id (and a message saying what is wrong); the
    supervisor's GET /api/tasks shows no task and the queue stays empty; the same endpoint then takes a good
    request (the refusals were about the input, not a broken endpoint)."""
    cfg = web_cfg(cb_cfg, per_address_per_minute=100)      # the refusals count towards the address's limit
    async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{app.web.port}"
        url = f"{base}/api/callbacks"
        refused = []
        for what, body, data, headers, status, error_id in _bad_requests(time.time()):
            got, err, _ = await post(http, url, body, data, headers)
            assert (got, err.get("error_id")) == (status, error_id), (what, err)
            assert isinstance(err.get("message"), str) and err["message"], (what, err)
            refused.append(what)
        # also the admin token: it is not the website's key
        got, err, _ = await post(http, url, {"topic": "billing", "number": CUSTOMER},
                                 headers={"Authorization": f"Bearer {cfg.http.admin_token}"})
        assert (got, err["error_id"]) == (401, "unauthorized")
        assert len(refused) == len(_bad_requests(0))
        assert await api_tasks(http, base, cfg.http.admin_token) == []
        assert app.task_book.open_tasks() == [] and app.acd.router.queue_snapshot("billing").calls == ()
        got, ok, _ = await post(http, url, {"topic": "billing", "number": "01632 960777"})
        assert got == 202 and ok["updated"] is False, ok
        [task] = await api_tasks(http, base, cfg.http.admin_token)
        assert (task["id"], task["kind"], task["queue"], task["state"]) == (ok["id"], "web_callback", "billing",
                                                                            "waiting")
        await assert_no_leaks(ari)


async def test_the_rate_limits_per_number_and_per_client_address_answer_429(cb_cfg):
    """per_number_per_hour 2 and per_address_per_minute 4: the third request for a number gets 429
    rate-limited (Retry-After up to an hour) and changes nothing, from any address; the fifth request from
    an address gets 429 (Retry-After up to a minute), on the public page's POST /callback too, while another
    address is still served."""
    cfg = web_cfg(cb_cfg, per_number_per_hour=2, per_address_per_minute=4)
    async with running_app(cfg) as app, ari_client(cfg) as ari, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{app.web.port}"
        url = f"{base}/api/callbacks"
        token = cfg.http.admin_token
        # per number: two requests (the second updates the first), the third is refused
        got, first, _ = await post(http, url, {"topic": "billing", "number": "01632 960777", "name": "Ada"})
        assert got == 202, first
        got, again, _ = await post(http, url, {"topic": "billing", "number": CUSTOMER, "name": "Ada L."})
        assert got == 202 and again["id"] == first["id"], again
        got, err, headers = await post(http, url, {"topic": "billing", "number": "+44 1632 960777", "name": "Eve"})
        assert (got, err["error_id"]) == (429, "rate-limited"), err
        assert "number" in err["message"] and 60 < int(headers["Retry-After"]) <= 3600, (err, headers)
        [task] = await api_tasks(http, base, token)
        assert task["id"] == first["id"] and task["name"] == "Ada L."              # the refused one changed nothing
        # per address: 3 requests counted so far (the refused one too), a 4th with another number is taken ...
        got, other, _ = await post(http, url, {"topic": "billing", "number": OTHER})
        assert got == 202 and other["updated"] is False, other
        # ... the 5th is refused, whatever its number, also on the public page
        for path, headers_ in (("/api/callbacks", AUTH), ("/callback", {})):
            got, err, headers = await post(http, base + path, {"topic": "billing", "number": THIRD},
                                           headers=headers_)
            assert (got, err["error_id"]) == (429, "rate-limited"), (path, err)
            assert "address" in err["message"] and 0 < int(headers["Retry-After"]) <= 60, (path, err, headers)
        assert sorted(t["id"] for t in await api_tasks(http, base, token)) == sorted([first["id"], other["id"]])
        # another client address has its own allowance; the number's limit holds from there too
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as elsewhere:
            got, third, _ = await post(elsewhere, url, {"topic": "billing", "number": THIRD})
            assert got == 202, third
            got, err, _ = await post(elsewhere, url, {"topic": "billing", "number": CUSTOMER})
            assert (got, err["error_id"]) == (429, "rate-limited") and "number" in err["message"], err
        tasks = await api_tasks(http, base, token)
        assert sorted(t["id"] for t in tasks) == sorted([first["id"], other["id"], third["id"]])
        assert {t.number for t in app.task_book.open_tasks()} == {CUSTOMER, OTHER, THIRD}
        await assert_no_leaks(ari)
