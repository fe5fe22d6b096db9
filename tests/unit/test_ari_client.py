"""The REST client against a real aiohttp server on loopback: auth in a header, params, typed errors."""

import pytest
from aiohttp import web

from ivr.ari import AriClient, Conflict, NotFound, Unavailable


@pytest.fixture
async def server():
    seen = []

    async def handle(request: web.Request):
        seen.append(request)
        body = await request.text()
        request["body"] = body  # noqa: aiohttp recommends RequestKey; a str key is fine in a test
        if request.path.endswith("/gone"):
            return web.json_response({"message": "Channel not found"}, status=404)
        if request.path.endswith("/busy"):
            return web.json_response({"message": "in use"}, status=409)
        if request.path.endswith("/broken"):
            return web.Response(status=500, text="oops")
        if request.path.startswith("/ari/channels/c1/play/"):
            return web.json_response({"id": request.match_info.get("tail", "").split("/")[-1],
                                      "target_uri": "channel:c1", "state": "queued"})
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_credentials_go_in_a_header_never_in_the_url(server):
    url, seen = server
    async with AriClient(url, "ivr", "s3cret", "ivr") as ari:
        await ari.answer("c1")
    req = seen[-1]
    assert req.method == "POST" and req.path == "/ari/channels/c1/answer"
    assert req.headers["Authorization"] == "Basic aXZyOnMzY3JldA=="
    assert "s3cret" not in str(req.url) and "api_key" not in str(req.url)


async def test_play_sends_every_media_in_order_with_client_playback_id(server):
    url, seen = server
    async with AriClient(url, "u", "p", "ivr") as ari:
        pb = await ari.play("c1", "pb-7", ["sound:a", "digits:12"], lang="fr")
    req = seen[-1]
    assert req.path == "/ari/channels/c1/play/pb-7"
    assert req.query.getall("media") == ["sound:a,digits:12"] and req.query["lang"] == "fr"
    assert pb.channel_id == "c1"


async def test_originate_carries_app_args_and_variables_in_the_body(server):
    url, seen = server
    async with AriClient(url, "u", "p", "ivr") as ari:
        await ari.originate("agent-leg-1", "PJSIP/agent1", app_args=["agent", "call-9"], caller_id='"Ann" <555>',
                            timeout=15, variables={"CALLERID(name)": "Ann"})
    req = seen[-1]
    assert req.path == "/ari/channels/agent-leg-1" and req.query["appArgs"] == "agent,call-9"
    assert req.query["app"] == "ivr" and req.query["timeout"] == "15"
    assert req["body"] == '{"variables": {"CALLERID(name)": "Ann"}}'


async def test_http_errors_become_typed_exceptions(server):
    url, _ = server
    async with AriClient(url, "u", "p", "ivr") as ari:
        with pytest.raises(NotFound):
            await ari.hangup("gone")
        assert await ari.hangup_quietly("gone") is False
        with pytest.raises(Conflict):
            await ari.channel("busy")
        with pytest.raises(Unavailable):
            await ari.channel("broken")


async def test_unreachable_asterisk_is_unavailable_not_a_crash():
    async with AriClient("http://127.0.0.1:9", "u", "p", "ivr", timeout=1) as ari:
        with pytest.raises(Unavailable) as e:
            await ari.channels()
    assert e.value.status == 0


async def test_unknown_parameter_is_refused_before_any_request():
    ari = AriClient("http://127.0.0.1:9", "u", "p", "ivr")
    with pytest.raises(TypeError, match="digits"):
        await ari._op("channels.dtmf", channelId="c1", digits="1")
    await ari.close()


async def test_many_event_sources_are_subscribed_in_requests_asterisk_accepts(server):
    # Asterisk answers 400 to a request line above ~4 KB: 400 agent endpoints must not go in one URL
    url, seen = server
    sources = [f"endpoint:PJSIP/agent{i:04d}" for i in range(400)]
    async with AriClient(url, "u", "p", "ivr") as ari:
        await ari.subscribe(sources)
        await ari.unsubscribe(sources[:3])
    subs = [r for r in seen if r.method == "POST" and r.path == "/ari/applications/ivr/subscription"]
    assert len(subs) > 1 and all(len(str(r.rel_url)) < 3000 for r in subs)
    assert [s for r in subs for s in r.query["eventSource"].split(",")] == sources
    unsub = seen[-1]
    assert unsub.method == "DELETE" and unsub.query["eventSource"].split(",") == sources[:3]
