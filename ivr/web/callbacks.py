"""Callback requests from the web: a company's website (``POST /api/callbacks`` with the website key) or
the project's own public "request a call" page (``GET /callback``, posting to ``POST /callback``). A
request becomes a ``web_callback`` task in the queue its topic names, with the same skills and the same
router as a phone call; a number that already has an open callback in that queue updates it (never two
calls). Scheduled requests wait until their window opens and expire if it closes unserved.

Input is checked strictly (stable error ids): the number must be a possible phone number (read like the
CRM reads caller IDs: E.164, or national in ``default_region``); a withheld or garbage number is refused;
the topic must be one the config publishes; a window must be in the future, at most ``max_days_ahead``
days away and at least ``min_window_minutes`` long. Requests are rate-limited per client address and per
number (429 with ``Retry-After``).
"""

from __future__ import annotations

import hmac
import html
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from ..crm.phone import dialable
from ..logsafe import mask_number
from ..tasks import NewTask, Task, TaskKind
from ..tasks.policy import WebCallbackPolicy
from .errors import ApiError, bad_request, json_body, printable
from .ratelimit import RateLimit

FIELDS = frozenset({"number", "name", "topic", "window"})
NAME_MAX = 64


class TaskRequests(Protocol):
    def request(self, req: NewTask) -> tuple[Task, bool]: ...


@dataclass(frozen=True)
class WebCallbacks:
    policy: WebCallbackPolicy
    book: TaskRequests
    #: called after a task was added (the glue releases due tasks into the router)
    wake: Callable[[], None]
    #: estimated wait in seconds of a queue now (None: no estimate)
    estimate: Callable[[str], float | None]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_address", RateLimit(self.policy.per_address_per_minute, 60.0, self.clock))
        object.__setattr__(self, "_by_number", RateLimit(self.policy.per_number_per_hour, 3600.0, self.clock))

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/api/callbacks", self.api_request)
        r.add_get("/callback", self.page)
        r.add_post("/callback", self.page_request)

    # ------------------------------------------------------------------------------- handlers
    async def api_request(self, request: web.Request) -> web.Response:
        key = self.policy.api_key
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not key:
            raise ApiError(503, "web-callbacks-disabled", "no website key configured (IVR_WEB_CALLBACK_KEY)")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"),
                                                                 key.encode("utf-8", "surrogatepass")):
            raise ApiError(401, "unauthorized", "missing or wrong website key")
        return await self._request(request)

    async def page_request(self, request: web.Request) -> web.Response:
        return await self._request(request)

    async def page(self, request: web.Request) -> web.Response:
        topics = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>'
                         for t in sorted(self.policy.topics))
        waits = {t: self.estimate(q) for t, q in self.policy.topics.items()}
        body = _PAGE.replace("{topics}", topics).replace(
            "{waits}", html.escape(_json({t: (None if w is None else round(w)) for t, w in waits.items()})))
        return web.Response(text=body, content_type="text/html", headers=_HTML_HEADERS)

    # --------------------------------------------------------------------------------- shared
    async def _request(self, request: web.Request) -> web.Response:
        address = request.remote or "?"
        wait = self._by_address.hit(address)
        if wait:
            raise _limited(wait, "too many requests from this address")
        body = await json_body(request, FIELDS)
        req = self.parse(body, source=f"web:{address}")
        wait = self._by_number.hit(req.number or "")
        if wait:
            raise _limited(wait, "too many requests for this number")
        task, new = self.book.request(req)
        self.wake()
        est = self.estimate(req.queue)
        return web.json_response(
            {"id": task.id, "state": task.state.value, "topic": body["topic"], "number": mask_number(req.number or ""),
             "window": None if task.not_before is None and task.not_after is None
             else {"from": _iso(task.not_before), "to": _iso(task.not_after)},
             "updated": not new,
             "estimated_wait": None if est is None else round(est)}, status=202)

    def parse(self, body: Mapping[str, Any], source: str = "") -> NewTask:
        """The request as a task to add, or an ``ApiError`` with a stable id."""
        p = self.policy
        topic = body.get("topic")
        if not isinstance(topic, str) or topic not in p.topics:
            raise bad_request("unknown-topic", f"topic must be one of {', '.join(sorted(p.topics)) or 'none'}, "
                                               f"got {printable(topic)}")
        raw = body.get("number")
        number = dialable(raw, p.default_region) if isinstance(raw, str) else None
        if number is None:
            raise bad_request("invalid-number", "number must be a phone number we can call (with its country "
                                                "code, or a national number)")
        name = body.get("name", "")
        if not isinstance(name, str) or len(name) > NAME_MAX or not name.isprintable():
            raise bad_request("invalid-request", f"name must be at most {NAME_MAX} printable characters")
        not_before = not_after = None
        if body.get("window") is not None:
            not_before, not_after = self._window(body["window"])
        return NewTask(TaskKind.WEB_CALLBACK, p.topics[topic], number=number, name=name.strip(),
                       not_before=not_before, not_after=not_after, source=source)

    def _window(self, w: Any) -> tuple[float, float]:
        p = self.policy
        if not isinstance(w, Mapping) or set(w) != {"from", "to"}:
            raise bad_request("invalid-window", 'window must be {"from": ..., "to": ...} (ISO 8601 with offset)')
        try:
            start, end = (_parse_time(w["from"]), _parse_time(w["to"]))
        except ValueError as e:
            raise bad_request("invalid-window", str(e)) from None
        now = self.wall()
        if end <= now:
            raise bad_request("invalid-window", "the window is already over")
        if end - start < p.min_window_minutes * 60:
            raise bad_request("invalid-window", f"the window must be at least {p.min_window_minutes:g} minutes")
        if start > now + p.max_days_ahead * 86400:
            raise bad_request("invalid-window", f"the window must start within {p.max_days_ahead:g} days")
        return max(start, now), end


def _parse_time(v: Any) -> float:
    if not isinstance(v, str) or len(v) > 40:
        raise ValueError("window times are ISO 8601 strings with an offset, e.g. 2026-12-03T09:30:00+01:00")
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {printable(v)}") from None
    if t.tzinfo is None:
        raise ValueError(f"a window time needs its UTC offset (e.g. +01:00 or Z): {printable(v)}")
    return t.timestamp()


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _limited(wait: float, message: str) -> ApiError:
    return ApiError(429, "rate-limited", f"{message}; try again in {math.ceil(wait)} s",
                    headers={"Retry-After": str(math.ceil(wait))})


def _json(v: Any) -> str:
    import json
    return json.dumps(v, sort_keys=True)


_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Request a call</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}label{display:block;margin:.6em 0}
input,select{width:100%;padding:.3em}#result{margin-top:1em;font-weight:bold}</style></head><body>
<h1>Request a call</h1>
<form id="f"><label>Topic <select id="topic">{topics}</select></label>
<p id="wait"></p>
<label>Your number <input id="number" type="tel" autocomplete="tel" required></label>
<label>Your name <input id="name" maxlength="64" autocomplete="name"></label>
<label>Not before (optional) <input id="from" type="datetime-local"></label>
<label>Not after (optional) <input id="to" type="datetime-local"></label>
<button id="send" type="submit">Call me back</button></form><p id="result"></p>
<script>
const waits = JSON.parse("{waits}".replace(/&quot;/g, '"'));
const $ = (id) => document.getElementById(id);
function showWait() {
  const w = waits[$("topic").value];
  $("wait").textContent = w == null ? "No wait estimate right now." :
    "Estimated wait: about " + Math.max(1, Math.round(w / 60)) + " minute(s).";
}
function iso(v) { return v ? new Date(v).toISOString() : null; }
$("topic").addEventListener("change", showWait); showWait();
$("f").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {topic: $("topic").value, number: $("number").value, name: $("name").value};
  if ($("from").value || $("to").value) body.window = {from: iso($("from").value), to: iso($("to").value)};
  const r = await fetch("/callback", {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body)});
  const j = await r.json();
  $("result").textContent = r.ok ?
    ("We will call you back at " + j.number + (j.window ? " between " + j.window.from + " and " + j.window.to : "") + ".") :
    ("Sorry: " + j.message);
  $("result").dataset.state = r.ok ? j.state : j.error_id;
});
</script></body></html>"""
