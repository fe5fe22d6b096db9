"""The admin page (/admin) in a real headless Chromium on the real stack: an admin logs in, adds an agent and
changes a queue's service level through the page's forms, sees both in the audit list, and the API confirms the
new definitions; refusals (bad JSON, a bad definition, a queue in use) show their error id on the page and
change nothing; an agent user and an anonymous visitor get no admin page."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.e2e.test_users_e2e import PW, login, make_users, wait_js
from tests.support.browser import Browser
from tests.support.stack import running_app

pytestmark = pytest.mark.e2e

NEW_AGENT = {"id": "agent9", "name": "Nina <b>New</b>", "skills": {"billing": 2}, "languages": ["en"],
             "login": False}


def js(value) -> str:
    return json.dumps(value)


async def set_editor(b: Browser, text: str) -> None:
    await b.eval(f"document.getElementById('editor-text').value = {js(text)}; true")


async def click(b: Browser, selector: str) -> None:
    assert await b.eval(f"(() => {{ const e = document.querySelector({js(selector)}); "
                        f"if (!e) return false; e.click(); return true; }})()"), selector


async def editor_loaded(b: Browser) -> None:
    """The editor is open with the definition just fetched (it stays hidden while one loads)."""
    await wait_js(b, "!document.getElementById('editor').hidden && "
                     "document.getElementById('editor-text').value.includes('required_skills')")


async def shown_error(b: Browser, error_id: str) -> str:
    await wait_js(b, f"!document.getElementById('error').hidden && "
                     f"document.getElementById('error-id').textContent === {js(error_id)}")
    return await b.text("error-message")


async def test_an_admin_edits_agents_and_queues_on_the_admin_page(flow_cfg):
    async with running_app(flow_cfg) as app, Browser() as b:
        base = f"http://127.0.0.1:{app.web.port}"
        await make_users(base, flow_cfg.http.admin_token)      # ann (agent1), sup, root (admin)

        # nobody logged in: sent to the login page; an agent user: 403, no page
        async with aiohttp.ClientSession(base) as http, http.get("/admin", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/login?next=/admin"
        s, _ = await login(base, "ann")
        async with s, s.get("/admin", allow_redirects=False) as r:
            assert r.status == 403 and (await r.json())["error_id"] == "forbidden"

        # the admin logs in through /login and lands on /admin
        await b.goto(f"{base}/admin")
        await wait_js(b, "location.pathname === '/login'")
        await b.eval(f"""document.getElementById('username').value = 'root';
                         document.getElementById('password').value = {js(PW)};
                         document.getElementById('submit').click(); true""")
        await wait_js(b, "location.pathname === '/admin'")
        await wait_js(b, "!!document.querySelector('#agents-body tr[data-agent=agent1]') && "
                         "!!document.querySelector('#queues-body tr[data-queue=billing]') && "
                         "!!document.querySelector('#users-body tr[data-user=ann]')")
        await b.eval("window.confirm = () => true; true")          # the delete buttons ask first

        api, _ = await login(base, "root")
        async with api:
            async def get(path: str) -> dict:
                async with api.get(path) as r:
                    assert r.status == 200, await r.text()
                    return await r.json()

            billing_before = (await get("/api/queues/billing/definition"))["definition"]

            # add an agent through the page's form
            await click(b, "#agent-add")
            await wait_js(b, "!document.getElementById('editor').hidden")
            await set_editor(b, json.dumps(NEW_AGENT))
            await click(b, "#editor-save")
            await wait_js(b, "!!document.querySelector('#agents-body tr[data-agent=agent9]')")
            assert await b.eval("document.getElementById('editor').hidden")
            row = await b.eval("document.querySelector('#agents-body tr[data-agent=agent9]').textContent")
            assert "Nina <b>New</b>" in row                     # shown as text, not markup
            assert await b.eval("document.querySelector('#agents-body b') === null")

            # a bad JSON text: the server's error id on the page, nothing changed
            await click(b, "button[data-edit-queue=billing]")
            await editor_loaded(b)
            await set_editor(b, '{"name": "billing", "service_level": {"percent": 90,')
            await click(b, "#editor-save")
            await shown_error(b, "invalid-json")
            assert not await b.eval("document.getElementById('editor').hidden")   # kept open to correct it
            # valid JSON, a bad definition: invalid-queue
            await set_editor(b, '{"name": "billing", "service_level": "fast"}')
            await click(b, "#editor-save")
            assert await shown_error(b, "invalid-queue")
            assert (await get("/api/queues/billing/definition"))["definition"] == billing_before

            # change billing's service level through the page
            await click(b, "button[data-edit-queue=billing]")
            await editor_loaded(b)
            await b.eval("""(() => { const t = document.getElementById('editor-text');
                                     const d = JSON.parse(t.value);
                                     d.service_level = {percent: 90, seconds: 15};
                                     t.value = JSON.stringify(d, null, 2); return true; })()""")
            await click(b, "#editor-save")
            await wait_js(b, "document.getElementById('editor').hidden && "
                             "document.getElementById('notice').textContent.includes('billing saved')")
            assert await b.eval("document.getElementById('error').hidden")
            await wait_js(b, "document.querySelector('#queues-body tr[data-queue=billing]')"
                             ".textContent.includes('90% in 15 s')")

            # a queue in use cannot be deleted: the error id and its details on the page
            await click(b, "button[data-delete-queue=billing]")
            await shown_error(b, "queue-in-use")
            assert "in_use" in await b.text("error-details")

            # both changes in the audit list on the page
            await wait_js(b, "!!document.querySelector('#audit-body tr[data-action=\"agent.create\"]') && "
                             "!!document.querySelector('#audit-body tr[data-action=\"queue.update\"]')")
            audit_rows = await b.eval("[...document.querySelectorAll('#audit-body tr')].map((r) => r.textContent)")
            assert any("agent:agent9" in t and "root" in t for t in audit_rows)
            assert sum("queue.update" in t and "queue:billing" in t for t in audit_rows) == 1  # only the good one

            # the API confirms the new definitions
            agent = (await get("/api/agents/agent9/definition"))["definition"]
            assert agent["name"] == NEW_AGENT["name"] and agent["skills"] == {"billing": 2}
            assert agent["languages"] == ["en"]
            billing = (await get("/api/queues/billing/definition"))["definition"]
            assert billing["service_level"] == {"percent": 90, "seconds": 15}
            assert {k: v for k, v in billing.items() if k != "service_level"} == \
                   {k: v for k, v in billing_before.items() if k != "service_level"}

            # delete the new agent through the page (after the confirm)
            await click(b, "button[data-delete-agent=agent9]")
            await wait_js(b, "!document.querySelector('#agents-body tr[data-agent=agent9]')")
            async with api.get("/api/agents/agent9/definition") as r:
                assert r.status == 404 and (await r.json())["error_id"] == "agent-not-found"

            # users: created and deleted through the page
            await b.eval("""document.getElementById('user-name').value = 'zed';
                            document.getElementById('user-role').value = 'supervisor';
                            document.getElementById('user-password').value = 'another good password';
                            document.getElementById('user-queues').value = 'billing, nope'; true""")
            await click(b, "#user-create")
            await shown_error(b, "unknown-queue")
            assert app.accounts.store.user("zed") is None
            await b.eval("document.getElementById('user-queues').value = 'billing'; true")
            await click(b, "#user-create")
            await wait_js(b, "!!document.querySelector('#users-body tr[data-user=zed]')")
            assert list(app.accounts.store.user("zed").queues) == ["billing"]
            await click(b, "button[data-delete-user=zed]")
            await wait_js(b, "!document.querySelector('#users-body tr[data-user=zed]')")
            assert app.accounts.store.user("zed") is None

        # Sign out ends the session; logging in again at /login (no "next") lands an admin on /admin
        await click(b, "#signout")
        await wait_js(b, "location.pathname === '/login' && !!document.getElementById('username')")
        await b.eval(f"""document.getElementById('username').value = 'root';
                         document.getElementById('password').value = {js(PW)};
                         document.getElementById('submit').click(); true""")
        await wait_js(b, "location.pathname === '/admin'")
        await wait_js(b, "!!document.querySelector('#agents-body tr[data-agent=agent1]')")
