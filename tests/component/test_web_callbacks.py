"""Web callback requests over real loopback HTTP (aiohttp), with the real task book and an SQLite store
(no Asterisk: what a request becomes, what is refused and why)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from ivr.calls.task_book import TaskBook
from ivr.tasks import SqliteTaskStore, TaskKind, TaskState
from ivr.tasks.policy import CallbackPolicy, WebCallbackConfigError, WebCallbackPolicy
from ivr.web.callbacks import WebCallbacks
from ivr.web.errors import ApiError

WALL = 1_800_000_000.0
KEY = "site-key-123"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@web.middleware
async def errors(request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()


@pytest.fixture
async def site():
    clock = Clock()
    book = TaskBook(SqliteTaskStore(), CallbackPolicy(), wall_clock=lambda: WALL + clock.t, router_clock=clock)
    woken = []
    wc = WebCallbacks(WebCallbackPolicy(topics={"billing": "billing", "tech": "technical"}, default_region="FR",
                                        per_number_per_hour=2, per_address_per_minute=5, api_key=KEY),
                      book, wake=lambda: woken.append(1), estimate=lambda q: 240.0 if q == "billing" else None,
                      clock=clock, wall=lambda: WALL + clock.t)
    app = web.Application(middlewares=[errors])
    wc.add_routes(app.router)
    runner = web.AppRunner(app)
    await runner.setup()
    s = web.TCPSite(runner, "127.0.0.1", 0)
    await s.start()
    port = s._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as http:
        yield type("Site", (), {"url": f"http://127.0.0.1:{port}", "http": http, "book": book, "woken": woken,
                                "clock": clock})
    await runner.cleanup()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(hours=1))).isoformat()


async def post(site, body, key=KEY, path="/api/callbacks"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with site.http.post(site.url + path, json=body, headers=headers) as r:
        return r.status, await r.json(), r.headers


async def test_a_request_becomes_a_web_callback_task_in_the_topics_queue(site):
    status, body, _ = await post(site, {"number": "06 12 34 56 78", "name": "Ada", "topic": "billing"})
    assert status == 202 and body["state"] == "waiting" and body["estimated_wait"] == 240
    assert body["updated"] is False and "5678" not in body["number"]          # masked back
    [t] = site.book.open_tasks()
    assert (t.kind, t.queue, t.number, t.name) == (TaskKind.WEB_CALLBACK, "billing", "+33612345678", "Ada")
    assert t.id == body["id"] and site.woken == [1]


async def test_the_same_number_again_updates_the_first_request(site):
    _, first, _ = await post(site, {"number": "+33612345678", "topic": "billing"})
    status, again, _ = await post(site, {"number": "0612345678", "name": "Ada L.", "topic": "billing"})
    assert status == 202 and again["id"] == first["id"] and again["updated"] is True
    assert [t.name for t in site.book.open_tasks()] == ["Ada L."]


async def test_a_scheduled_request_keeps_its_window(site):
    start, end = WALL + site.clock.t + 3600, WALL + site.clock.t + 7200
    status, body, _ = await post(site, {"number": "+33612345678", "topic": "tech",
                                        "window": {"from": iso(start), "to": iso(end)}})
    assert status == 202 and body["window"]["from"] and body["estimated_wait"] is None
    [t] = site.book.open_tasks()
    assert (t.not_before, t.not_after, t.queue) == (start, end, "technical")
    assert site.book.release_due() == []                                          # not yet


@pytest.mark.parametrize("body, error_id", [
    ({"number": "anonymous", "topic": "billing"}, "invalid-number"),
    ({"number": "+33 6 12", "topic": "billing"}, "invalid-number"),
    ({"number": "0163", "topic": "billing"}, "invalid-number"),      # only possible dialled locally
    ({"number": "call me maybe", "topic": "billing"}, "invalid-number"),
    ({"number": 33612345678, "topic": "billing"}, "invalid-number"),
    ({"number": "+33612345678", "topic": "payroll"}, "unknown-topic"),
    ({"number": "+33612345678"}, "unknown-topic"),
    ({"number": "+33612345678", "topic": "billing", "name": "x" * 65}, "invalid-request"),
    ({"number": "+33612345678", "topic": "billing", "name": "a\x00b"}, "invalid-request"),
    ({"number": "+33612345678", "topic": "billing", "queue": "billing"}, "invalid-request"),
    ({"number": "+33612345678", "topic": "billing", "window": {"from": "tomorrow", "to": "later"}},
     "invalid-window"),
    ({"number": "+33612345678", "topic": "billing", "window": {"from": "2026-12-03T09:00:00",
                                                               "to": "2026-12-03T10:00:00"}}, "invalid-window"),
    ({"number": "+33612345678", "topic": "billing", "window": {"from": iso(WALL - 7200), "to": iso(WALL - 3600)}},
     "invalid-window"),
    ({"number": "+33612345678", "topic": "billing", "window": {"from": iso(WALL + 3600), "to": iso(WALL + 3660)}},
     "invalid-window"),
    ({"number": "+33612345678", "topic": "billing", "window": {"from": iso(WALL + 30 * 86400),
                                                               "to": iso(WALL + 31 * 86400)}}, "invalid-window"),
])
async def test_bad_input_is_refused_with_a_stable_id_and_nothing_is_queued(site, body, error_id):
    status, err, _ = await post(site, body)
    assert status == 400 and err["error_id"] == error_id, err
    assert site.book.open_tasks() == [] and site.woken == []


async def test_the_website_key_is_required_on_the_api_but_not_on_the_public_page(site):
    assert (await post(site, {"number": "+33612345678", "topic": "billing"}, key=None))[0] == 401
    assert (await post(site, {"number": "+33612345678", "topic": "billing"}, key="wrong"))[0] == 401
    status, body, _ = await post(site, {"number": "+33612345678", "topic": "billing"}, key=None, path="/callback")
    assert status == 202
    async with site.http.get(site.url + "/callback") as r:
        page = await r.text()
    assert r.status == 200 and 'value="billing"' in page and "Content-Security-Policy" in r.headers


async def test_requests_are_rate_limited_per_number_and_per_address(site):
    for _ in range(2):
        assert (await post(site, {"number": "+33612345678", "topic": "billing"}))[0] == 202
    status, err, headers = await post(site, {"number": "+33612345678", "topic": "billing"})
    assert status == 429 and err["error_id"] == "rate-limited" and int(headers["Retry-After"]) > 0
    for n in range(2):                                   # five per address per minute (two used, one refused)
        assert (await post(site, {"number": f"+3361234560{n}", "topic": "billing"}))[0] == 202
    status, err, headers = await post(site, {"number": "+33612345699", "topic": "billing"})
    assert status == 429 and int(headers["Retry-After"]) <= 60
    site.clock.t += 61
    assert (await post(site, {"number": "+33612345699", "topic": "billing"}))[0] == 202
    assert all(t.state is TaskState.WAITING for t in site.book.open_tasks())


def test_the_config_section_is_checked():
    for bad in ({"topics": {"x": 3}}, {"default_region": "France"}, {"per_number_per_hour": 0},
                {"max_days_ahead": -1}, {"nope": 1}):
        with pytest.raises(WebCallbackConfigError):
            WebCallbackPolicy.from_dict(bad)
