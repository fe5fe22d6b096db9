"""The pages' static scripts, shipped as package data next to this file: ``jssip.min.js`` (JsSIP 3.13.8,
built by scripts/build-js.sh from web/package-lock.json) and ``softphone.js`` (the agent page's browser
phone, docs/webrtc.md) and ``admin.js`` (the admin page). Served at ``/static/<name>`` by `add_routes`; nothing is downloaded at run time."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

from ..errors import ApiError

SCRIPTS = ("jssip.min.js", "softphone.js", "admin.js")
HEADERS = {"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache",
           "X-Content-Type-Options": "nosniff"}


@cache
def script(name: str) -> bytes:
    return files(__name__).joinpath(name).read_bytes()


async def _serve(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in SCRIPTS:
        raise ApiError(404, "route-not-found", f"no route {request.method} {request.path}")
    return web.Response(body=script(name), headers=HEADERS)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/static/{name}", _serve)
