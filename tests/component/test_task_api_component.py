"""The task API's routing decisions and why-not answers on a real loopback port: a real router, the task
book on an SQLite file, the API's own routes (auth and error rendering as the server's middleware does)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from ivr.acd import AgentConfig, Offer, QueueConfig, Router
from ivr.calls.task_book import NewTask, TaskBook
from ivr.tasks import SqliteTaskStore, TaskKind
from ivr.tasks.policy import CallbackPolicy
from ivr.web.errors import ApiError
from ivr.web.identity import BOOTSTRAP, PRINCIPAL_KEY
from ivr.web.tasks import TaskApi

WALL0 = 1_800_000_000.0


class Actions:
    def action_refused(self, task_id: str, action: str) -> str | None:
        return "no"

    def request_action(self, task_id: str, action: str, disposition: str = "") -> None:
        raise AssertionError("not here")


@web.middleware
async def errors(request, handler):
    request[PRINCIPAL_KEY] = BOOTSTRAP        # an admin asks (the roles are tests/e2e/test_users_e2e.py's)
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()


@pytest.fixture
async def world(tmp_path):
    clocks = SimpleNamespace(router=500.0, wall=WALL0)
    router = Router([QueueConfig("billing", required_skills={"billing": 1}, wrap_up=0)], lambda: clocks.router)
    for aid, level in (("strong", 5), ("weak", 2)):
        router.add_agent(AgentConfig(aid, skills={"billing": level}))
        router.login(aid)
    router.add_agent(AgentConfig("sales-only", skills={"sales": 3}))
    n = iter(range(1, 100))
    book = TaskBook(SqliteTaskStore(tmp_path / "tasks.db"), CallbackPolicy(retry_delay=120, max_attempts=2),
                    wall_clock=lambda: clocks.wall, router_clock=lambda: clocks.router,
                    new_id=lambda: f"task-{next(n)}")
    wa = web.Application(middlewares=[errors])
    TaskApi(book, Actions(), router).add_routes(wa.router)
    runner = web.AppRunner(wa)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        yield SimpleNamespace(router=router, book=book, clocks=clocks, http=http)
    await runner.cleanup()


def route(w) -> list[Offer]:
    """What the glue does (``TaskLegs.pump`` / ``_offer``): enqueue the due tasks, tell the book of offers."""
    out = []
    for t in w.book.release_due():
        call, since = w.book.router_call(t)
        for d in w.router.enqueue(call, waiting_since=since):
            if isinstance(d, Offer):
                w.book.offered(d.call_id, d.agent_id, d.explanation.reason, d.explanation.as_dict())
                out.append(d)
    return out


async def get(w, path: str) -> tuple[int, dict]:
    async with w.http.get(path) as r:
        return r.status, await r.json()


async def test_a_task_shows_its_decisions_and_why_another_agent_was_not_chosen(world):
    t = world.book.add(NewTask(TaskKind.CALLBACK, "billing", number="+33612345678"))
    [offer] = route(world)
    assert offer.agent_id == "strong"
    status, body = await get(world, f"/api/tasks/{t.id}")
    assert status == 200 and body["state"] == "offered"
    [d] = body["decisions"]
    assert d["agent_id"] == "strong" and d["attempt"] == 1 and d["summary"] == "best skill fit (5 > 2)"
    assert [c["agent_id"] for c in d["explanation"]["candidates"]] == ["strong", "weak"]

    status, body = await get(world, f"/api/tasks/{t.id}/why-not/weak")
    assert status == 200 and body["routable"] and body["chosen"] is False and body["task_state"] == "offered"
    assert [r["code"] for r in body["reasons"]] == ["offered_to_other", "ranked_below"]
    assert body["reasons"][1]["message"] == "agent strong ranks first: better skill fit (5 > 2)"
    assert body["decisions"] == [d]

    status, body = await get(world, f"/api/tasks/{t.id}/why-not/strong")
    assert status == 200 and body["chosen"] is True

    status, body = await get(world, f"/api/tasks/{t.id}/why-not/sales-only")
    assert [r["code"] for r in body["reasons"]] == ["offered_to_other", "logged_out", "missing_skill"]
    assert body["reasons"][2]["message"] == ("agent sales-only lacks billing at level 1 (has 0), with no "
                                             "relaxation step in force")
    assert body["score"] is None and body["requirement"] == "billing>=1"


async def test_a_held_back_task_says_until_when_and_an_ended_one_is_409_with_its_decisions(world):
    t = world.book.add(NewTask(TaskKind.CALLBACK, "billing", number="+33612345678"))
    route(world)
    world.router.offer_answered(t.id)
    world.book.agent_answered(t.id)
    world.router.call_ended(t.id)
    world.book.customer_failed(t.id, "busy")                   # retried in 120 s: out of the router
    status, body = await get(world, f"/api/tasks/{t.id}/why-not/weak")
    assert status == 200 and body["in_router"] is False and body["reasons"][0]["code"] == "held_back"
    assert body["reasons"][0]["details"] == {"not_before": WALL0 + 120, "attempts": 1}

    world.book.cancel(t.id, "withdrawn by the customer")
    status, body = await get(world, f"/api/tasks/{t.id}/why-not/strong")
    assert status == 409 and body["error_id"] == "task-not-routable"
    assert body["details"]["state"] == "cancelled"
    assert [d["agent_id"] for d in body["details"]["offered_to_agent"]] == ["strong"]
    assert body["details"]["decisions"][0]["explanation"]["reason"] == "best skill fit (5 > 2)"


async def test_unknown_task_or_agent_is_404_with_a_stable_id(world):
    t = world.book.add(NewTask(TaskKind.CALLBACK, "billing", number="+33612345678"))
    status, body = await get(world, "/api/tasks/task-nope/why-not/weak")
    assert status == 404 and body["error_id"] == "task-not-found"
    status, body = await get(world, f"/api/tasks/{t.id}/why-not/ghost")
    assert status == 404 and body["error_id"] == "agent-not-found"
