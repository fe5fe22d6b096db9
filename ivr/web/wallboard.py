"""The open pages (no token; none shows a phone number or a secret): ``/`` (what this server offers),
``/healthz``, ``/metrics``, the wallboard and its data."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..task_metrics import queue_figures
from .deps import AcdView
from .pages import html_response, page


@dataclass(frozen=True)
class Wallboard:
    acd: AcdView | None
    ari_connected: Callable[[], bool]
    render_metrics: Callable[[], bytes]
    tasks_waiting: Callable[[], dict[str, dict[str, dict[str, float]]] | None]

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/", self.index)
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.prometheus)
        r.add_get("/wallboard", self.wallboard)
        r.add_get("/wallboard/data", self.wallboard_data)

    async def index(self, request: web.Request) -> web.Response:
        """What this server offers, with links (instead of a 404 for someone who opens the bare URL)."""
        agents = ""
        if self.acd is not None:
            agents = "".join(f'<li><a href="/agent/{html.escape(a, quote=True)}">agent page: {html.escape(a)}</a>'
                             "</li>" for a in self.acd.router.agent_ids())
        return html_response(page("index").replace("<!--AGENTS-->", agents))

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "ari_connected": bool(self.ari_connected())})

    async def prometheus(self, request: web.Request) -> web.Response:
        from ..metrics import CONTENT_TYPE
        resp = web.Response(body=self.render_metrics())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    def data(self) -> dict[str, Any]:
        """Per queue: callers on the line (``waiting``, ``ringing``, ``oldest_wait``: the router also holds
        tasks in its queues, they are not callers) and the tasks waiting for an agent (``tasks_waiting``,
        of which ``tasks_scheduled`` are held back until a time, ``tasks_oldest_wait``, ``tasks_by_kind``:
        the figures of ``ivr_tasks_*``)."""
        queues = []
        totals: dict[str, int] = {}
        acd = self.acd
        tasks = self.tasks_waiting()
        if acd is not None:
            for name in acd.router.queue_names():
                s = acd.router.queue_snapshot(name)
                pct = s.stats.service_level_pct
                callers = [c for c in s.calls if c.kind == "call"]
                ringing = sum(1 for c in callers if getattr(c.state, "value", c.state) == "ringing")
                queues.append({
                    "name": name, "waiting": len(callers) - ringing, "ringing": ringing,
                    "oldest_wait": round(max((c.wait for c in callers), default=0.0), 1),
                    "agents": acd.serving_agents(name)[0],
                    "service_level_pct": None if pct is None else round(pct, 1),
                    "service_level_target": list(s.service_level_target),
                    "entered": s.stats.entered, "answered": s.stats.answered, "abandoned": s.stats.abandoned,
                    **queue_figures(tasks, name)})
            for a in acd.router.agents_snapshot():
                # a phone that is off is shown as such, whatever state the agent is logged in with
                st = getattr(a.state, "value", str(a.state)) if a.registered else "unregistered"
                totals[st] = totals.get(st, 0) + 1
        return {"time": time.time(), "ari_connected": bool(self.ari_connected()), "queues": queues,
                "agents": totals}

    async def wallboard_data(self, request: web.Request) -> web.Response:
        return web.json_response(self.data())

    async def wallboard(self, request: web.Request) -> web.Response:
        rows = []
        for q in self.data()["queues"]:
            n = html.escape(q["name"], quote=True)
            sl = "–" if q["service_level_pct"] is None else f"{q['service_level_pct']:.0f}%"
            rows.append(
                f'<tr data-queue="{n}"><th>{n}</th><td id="wb-{n}-waiting">{q["waiting"]}</td>'
                f'<td id="wb-{n}-tasks">{"–" if q["tasks_waiting"] is None else q["tasks_waiting"]}</td>'
                f'<td id="wb-{n}-oldest">{_mmss(q["oldest_wait"])}</td>'
                f'<td id="wb-{n}-agents">{html.escape(_agents_text(q["agents"]))}</td>'
                f'<td id="wb-{n}-sl">{sl}</td><td id="wb-{n}-answered">{q["answered"]}</td>'
                f'<td id="wb-{n}-abandoned">{q["abandoned"]}</td></tr>')
        return html_response(page("wallboard").replace("<!--ROWS-->", "\n".join(rows)))


def _mmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _agents_text(by_state: dict[str, int]) -> str:
    short = {"available": "avail", "on_call": "talk", "wrap_up": "wrap", "paused": "pause", "reserved": "ring"}
    return " ".join(f"{short[k]} {by_state.get(k, 0)}" for k in short)
