"""The admin page: ``GET /admin`` (ivr/web/pages/admin.html; its script is ivr/web/static/admin.js, served
with the other static scripts). The page edits agents, queues and users and shows the audit log through the API
(docs/api.md), with the session cookie and its CSRF token; it holds no data itself.

Not logged in: a redirect to ``/login?next=/admin`` (like ``/agent``). Logged in but not an admin: 403
``forbidden``."""

from __future__ import annotations

from aiohttp import web

from .identity import PRINCIPAL_KEY, Principal, Role, forbidden
from .pages import html_response, page


async def admin_page(request: web.Request) -> web.StreamResponse:
    p = request.get(PRINCIPAL_KEY)
    if not isinstance(p, Principal):
        raise web.HTTPFound("/login?next=/admin")
    if p.role is not Role.ADMIN:
        raise forbidden("the admin page is for admins")
    return html_response(page("admin"))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/admin", admin_page)
