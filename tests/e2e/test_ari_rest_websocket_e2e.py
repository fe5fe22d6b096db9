"""REST over ARI websockets (`ari.rest_websockets`) on the real Asterisk: a caller goes through the IVR and
the queue to an agent with every request of the call sent as a websocket message; when the sockets drop,
HTTP carries the requests until they are back. The unit side: tests/unit/test_ari_rest_socket.py."""

from __future__ import annotations

import asyncio

import pytest

from ivr.ari import NotFound
from ivr.config import with_overrides
from ivr.sim.sipp import SippCaller, SippProcess
from tests.e2e.conftest import with_queue_overrides
from tests.support.stack import ari_client, assert_no_leaks, running_app, wait_for
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


def _served(cfg, talk_ms=2000):
    return SippProcess(SippCaller("400", steps=[("pause", 600), ("dtmf", "1"), ("pause", talk_ms)]),
                       cfg.asterisk.sip_port, timeout=60)


async def _one_call(app, cfg) -> tuple[int, int]:
    """(REST requests made, of which over a websocket) while one caller reaches agent1 and hangs up."""
    made, over_ws = app.ari.requests_made, app.rest_sockets.requests
    r = await asyncio.to_thread(_served(cfg).wait)
    assert r.ok, r.stderr
    await wait_for(lambda: not app.sessions and not app.acd.calls, 10, what="the call ended in the app")
    return app.ari.requests_made - made, app.rest_sockets.requests - over_ws


async def test_a_call_through_ivr_and_queue_sends_its_requests_over_the_websockets(flow_cfg, phones):
    cfg = with_overrides(with_queue_overrides(flow_cfg, wrap_up=0), ari={"rest_websockets": 2})
    agent = phones("agent1")["agent1"]
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: app.rest_sockets.connected == 2, 10, what="both REST websockets connected")
        apps = {a["name"] for a in await ari._request("GET", "/applications", [], None)}
        assert {"ivr-rest1", "ivr-rest2"} <= apps
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10)
        made, over_ws = await _one_call(app, cfg)
        assert len(agent.calls) == 1                          # the agent's phone really took the call
        # answer, play, originate, bridge, add both legs, hang up the leg, destroy the bridge: all as
        # websocket messages (only whole-collection GETs, e.g. the janitor's, stay on HTTP)
        assert over_ws >= 7 and made - over_ws <= 3, (made, over_ws)
        await assert_no_leaks(ari)


async def test_while_the_websockets_are_down_http_carries_the_requests_and_they_come_back(flow_cfg, phones):
    cfg = with_overrides(with_queue_overrides(flow_cfg, wrap_up=0),
                         ari={"rest_websockets": 1, "reconnect_min": 12.0, "reconnect_max": 12.0})
    phones("agent1")
    async with running_app(cfg) as app, ari_client(cfg) as ari:
        await wait_for(lambda: app.rest_sockets.connected == 1, 10, what="REST websocket connected")
        await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10)
        # Asterisk's side of the socket goes away (as in a network cut of that one connection)
        await app.rest_sockets.sockets[0].ws.close()
        await wait_for(lambda: app.rest_sockets.connected == 0, 5, what="the socket closed")
        made, over_ws = await _one_call(app, cfg)             # the reconnect waits >= 6 s: HTTP meanwhile
        assert over_ws == 0 and made >= 7, (made, over_ws)
        await wait_for(lambda: app.rest_sockets.connected == 1, 15, what="the socket reconnected")
        made, over_ws = await _one_call(app, cfg)
        assert over_ws >= 7, (made, over_ws)
        await assert_no_leaks(ari)


async def test_an_asterisk_that_ignores_rest_over_websockets_gets_everything_over_http(flow_cfg, phones, caplog):
    """An Asterisk before 22.4 / 21.9 / 20.14 accepts the websocket and ignores the requests on it: played
    here by a proxy that swallows the sockets' probe. No request waits on such a socket."""
    phones("agent1")
    async with TcpProxy(flow_cfg.asterisk.http_port) as proxy:
        proxy.stall(b"GET /ari/asterisk/ping", 120.0)      # the app sends no other ping
        cfg = with_overrides(with_queue_overrides(flow_cfg, wrap_up=0),
                             ari={"url": f"http://127.0.0.1:{proxy.port}", "rest_websockets": 2})
        async with running_app(cfg) as app, ari_client(flow_cfg) as ari:
            await wait_for(lambda: app.rest_sockets.unsupported, 12, what="the probes went unanswered")
            assert proxy.stalled_ws >= 1
            assert "does not answer ARI REST requests over websockets" in caplog.text
            await wait_for(lambda: app.acd.router.agent_snapshot("agent1").registered, 10)
            made, over_ws = await _one_call(app, cfg)
            assert over_ws == 0 and made >= 7, (made, over_ws)
            assert app.rest_sockets.connected == 0
            await assert_no_leaks(ari)


async def test_ids_and_values_arrive_at_asterisk_the_same_over_both_transports(asterisk):
    """Path parameters are percent-encoded by the client and decoded by Asterisk, query values travel as
    they are: an id or a caller's name with spaces, quotes, %, & or + reaches Asterisk unchanged either way."""
    cfg = asterisk.cfg
    async with ari_client(cfg) as http, ari_client(cfg) as over_ws:
        pool = over_ws.use_websockets(1)
        runner = asyncio.create_task(pool.run())
        try:
            await wait_for(lambda: pool.connected == 1, 10, what="REST websocket connected")
            for client, prefix in ((http, "h"), (over_ws, "w")):
                made = pool.requests
                for i, (ident, name) in enumerate([("a:b c", '"Ren%41e" <+33 1>'), ("x%y&z", "a&b=c+d"),
                                                   ("é ü", "naïve")]):
                    bid = f"{prefix}{i}-{ident}"
                    b = await client.create_bridge(bid, name=name)
                    assert (b.id, b.raw.get("name")) == (bid, name)
                    assert (await http.bridge(bid)).raw.get("name") == name      # as Asterisk holds it
                    await client.destroy_bridge(bid)
                    # Asterisk may list a destroyed bridge for a moment (seen once in a rehearsal)
                    await wait_for(lambda c=client, b=bid: _gone(c, b), 5, what=f"bridge {bid!r} destroyed")
                assert (pool.requests - made > 0) == (client is over_ws)
        finally:
            pool.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def _gone(client, bridge_id: str) -> bool:
    try:
        await client.bridge(bridge_id)
    except NotFound:
        return True
    return False
