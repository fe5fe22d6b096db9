"""The HTML pages (agent page, wallboard, index), shipped as package data next to this file and served
with `HTML_HEADERS`. Their scripts and styles are inline, plus the scripts this server serves itself
(/static/, ivr/web/static); the CSP allows nothing else."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; "
                               "connect-src 'self'; media-src blob:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


@cache
def page(name: str) -> str:
    """The text of ``<name>.html`` (read once)."""
    return files(__name__).joinpath(f"{name}.html").read_text(encoding="utf-8")


def html_response(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", headers=HTML_HEADERS)
