"""The REST side of the fake ARI (``tests/support/fake_ari.py``): one handler per operation of
``ivr/ari/operations.py``, with Asterisk's status codes (404 unknown resource, 409 channel not in Stasis or
id taken, 422 channel not in that bridge, 500 ``Allocation failed`` for an endpoint that is not online)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .fake_ari_state import AriFailure, FakeBridge, FakeChannel, FakeRecording, cause_of

if TYPE_CHECKING:
    from .fake_ari import FakeAri

_CALLER_ID = re.compile(r'^\s*"?(?P<name>[^"<]*)"?\s*<(?P<number>[^>]*)>\s*$')


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _ok() -> web.Response:
    return web.Response(status=204)


def _list(v: str | None) -> list[str]:
    return [x for x in (v or "").split(",") if x]


def add_routes(r: web.UrlDispatcher, fake: FakeAri) -> None:
    def channel(req: web.Request, *, stasis: bool = True) -> FakeChannel:
        ch = fake.channels.get(req.match_info["channelId"])
        if ch is None:
            raise AriFailure(404, "Channel not found")
        if stasis and not ch.in_stasis:
            raise AriFailure(409, "Channel not in Stasis application")
        return ch

    def bridge(req: web.Request) -> FakeBridge:
        b = fake.bridges.get(req.match_info["bridgeId"])
        if b is None:
            raise AriFailure(404, "Bridge not found")
        return b

    # ------------------------------------------------------------------------------- asterisk
    async def info(req: web.Request) -> web.Response:
        return _json({"system": {"version": "22.0.0-fake", "entity_id": "fa:ke:00:00:00:01"},
                      "build": {"os": "Linux"}, "status": {"startup_time": "", "last_reload_time": ""}})

    async def ping(req: web.Request) -> web.Response:
        return _json({"ping": "pong", "asterisk_id": "fa:ke:00:00:00:01", "timestamp": ""})

    async def var_get(req: web.Request) -> web.Response:
        return _json({"value": fake.global_vars.get(req.query.get("variable", ""), "")})

    async def var_set(req: web.Request) -> web.Response:
        fake.global_vars[req.query["variable"]] = req.query.get("value", "")
        return _ok()

    # ------------------------------------------------------------- dynamic configuration (sorcery)
    dyn: dict[tuple[str, str, str], list[dict[str, str]]] = {}

    def dyn_key(req: web.Request) -> tuple[str, str, str]:
        m = req.match_info
        return m["configClass"], m["objectType"], m["id"]

    async def config_get(req: web.Request) -> web.Response:
        if dyn_key(req) not in dyn:
            raise AriFailure(404, "Object not found")
        return _json(dyn[dyn_key(req)])

    async def config_put(req: web.Request) -> web.Response:
        body = await req.json()
        dyn[dyn_key(req)] = list(body.get("fields") or [])
        return _json(dyn[dyn_key(req)])

    async def config_delete(req: web.Request) -> web.Response:
        if dyn.pop(dyn_key(req), None) is None:
            raise AriFailure(404, "Object not found")
        return web.Response(status=204)

    # --------------------------------------------------------------------------- applications
    def application(name: str) -> dict[str, Any]:
        allowed, disallowed = fake.event_filters.get(name, (set(), set()))
        subs = fake.subscriptions.get(name, set())
        return {"name": name, "channel_ids": [c.id for c in fake.channels.values() if c.in_stasis],
                "bridge_ids": list(fake.bridges), "device_names": [],
                "endpoint_ids": sorted(s.removeprefix("endpoint:") for s in subs if s.startswith("endpoint:")),
                "events_allowed": [{"type": t} for t in sorted(allowed)],
                "events_disallowed": [{"type": t} for t in sorted(disallowed)]}

    async def app_get(req: web.Request) -> web.Response:
        return _json(application(req.match_info["app"]))

    async def subscribe(req: web.Request) -> web.Response:
        name = req.match_info["app"]
        for src in _list(req.query.get("eventSource")):
            kind, _, ident = src.partition(":")
            exists = {"endpoint": ident in fake.endpoints, "channel": ident in fake.channels,
                      "bridge": ident in fake.bridges, "deviceState": True}.get(kind)
            if exists is None:
                raise AriFailure(400, f"Invalid event source URI scheme '{kind}'")
            if not exists:
                raise AriFailure(422, "Event source does not exist")
            fake.subscriptions.setdefault(name, set()).add(src)
        return _json(application(name))

    async def unsubscribe(req: web.Request) -> web.Response:
        name = req.match_info["app"]
        for src in _list(req.query.get("eventSource")):
            fake.subscriptions.get(name, set()).discard(src)
        return _json(application(name))

    async def event_filter(req: web.Request) -> web.Response:
        name = req.match_info["app"]
        body = await req.json() if req.can_read_body else {}
        allowed = {str(e.get("type")) for e in body.get("allowed") or []}
        disallowed = {str(e.get("type")) for e in body.get("disallowed") or []}
        fake.event_filters[name] = (allowed, disallowed)
        return _json(application(name))

    # ------------------------------------------------------------------------------- channels
    async def channels_list(req: web.Request) -> web.Response:
        return _json([c.json() for c in fake.channels.values()])

    async def channel_get(req: web.Request) -> web.Response:
        return _json(channel(req, stasis=False).json())

    async def originate(req: web.Request) -> web.Response:
        cid = req.match_info["channelId"]
        q = req.query
        if cid in fake.channels:
            raise AriFailure(409, "Channel with given unique ID already exists")
        endpoint = q.get("endpoint", "")
        if "@" not in endpoint and fake.endpoints.get(endpoint) != "online":
            raise AriFailure(500, "Allocation failed")
        m = _CALLER_ID.match(q.get("callerId", ""))
        ch = FakeChannel(cid, f"{endpoint.split('@')[0]}-{len(fake.requests):08x}", "Down",
                         m["name"].strip() if m else "", m["number"] if m else q.get("callerId", ""), "", "s",
                         originated=True, endpoint=endpoint, app_args=tuple(_list(q.get("appArgs"))),
                         ring_timeout=int(q["timeout"]) if "timeout" in q else None)
        body = await req.json() if req.can_read_body else {}
        ch.variables.update({str(k): str(v) for k, v in (body.get("variables") or {}).items()})
        fake.channels[cid] = ch
        fake.ring(ch)
        return _json(ch.json())

    async def hangup(req: web.Request) -> web.Response:
        ch = channel(req, stasis=False)
        fake.end_channel(ch, cause_of(req.query.get("reason")))
        return _ok()

    async def answer(req: web.Request) -> web.Response:
        channel(req).state = "Up"
        return _ok()

    async def nothing(req: web.Request) -> web.Response:
        channel(req)
        return _ok()

    async def play(req: web.Request) -> web.Response:
        ch = channel(req)
        p = fake.play(req.match_info["playbackId"], f"channel:{ch.id}", tuple(_list(req.query.get("media"))))
        return _json(p.json(), 201)

    async def record(req: web.Request) -> web.Response:
        ch = channel(req)
        name = req.query["name"]
        exists = name in fake.recordings or name in fake.stored_recordings
        if exists and req.query.get("ifExists", "fail") == "fail":
            raise AriFailure(422, "Recording with the same name already exists")
        rec = FakeRecording(name, ch.id, req.query.get("format", "wav"))
        fake.recordings[name] = rec
        fake.emit("RecordingStarted", recording=rec.json())
        return _json(rec.json(), 201)

    async def moh(req: web.Request) -> web.Response:
        channel(req).moh = req.method == "POST"
        return _ok()

    async def chan_var_get(req: web.Request) -> web.Response:
        ch = channel(req, stasis=False)
        var = req.query.get("variable", "")
        value = ch.language if var == "CHANNEL(language)" else ch.variables.get(var)
        if value is None:
            raise AriFailure(404, "Provided variable was not found")
        return _json({"value": value})

    async def chan_var_set(req: web.Request) -> web.Response:
        ch = channel(req, stasis=False)
        var, value = req.query["variable"], req.query.get("value", "")
        if var == "CHANNEL(language)":
            ch.language = value
        else:
            ch.variables[var] = value
        return _ok()

    async def cont(req: web.Request) -> web.Response:
        ch = channel(req)
        if ch.bridge is not None:
            fake.leave_bridge(ch)
        ch.in_stasis, ch.app_name = False, ""
        ch.context = req.query.get("context", ch.context)
        ch.exten = req.query.get("extension", ch.exten)
        fake.emit("StasisEnd", channel=ch.json())
        return _ok()

    async def rtp(req: web.Request) -> web.Response:
        channel(req)
        return _json({"txcount": 0, "rxcount": 0, "txjitter": 0.0, "rxjitter": 0.0, "rtt": 0.0})

    # -------------------------------------------------------------------------------- bridges
    async def bridges_list(req: web.Request) -> web.Response:
        return _json([b.json() for b in fake.bridges.values()])

    async def bridge_get(req: web.Request) -> web.Response:
        return _json(bridge(req).json())

    async def bridge_create(req: web.Request) -> web.Response:
        bid = req.match_info["bridgeId"]
        b = fake.bridges.get(bid)
        if b is None:
            b = fake.bridges[bid] = FakeBridge(bid, req.query.get("type", "mixing"), req.query.get("name", ""))
            fake.emit("BridgeCreated", bridge=b.json())
        return _json(b.json())

    async def bridge_destroy(req: web.Request) -> web.Response:
        b = bridge(req)
        for cid in list(b.channels):
            if (ch := fake.channels.get(cid)) is not None:
                fake.leave_bridge(ch)
        for p in fake.playing(b.id):
            fake.finish_playback(p.id)
        del fake.bridges[b.id]
        fake.emit("BridgeDestroyed", bridge=b.json())
        return _ok()

    async def add_channel(req: web.Request) -> web.Response:
        b = bridge(req)
        chans = []
        for cid in _list(req.query.get("channel")):
            ch = fake.channels.get(cid)
            if ch is None:
                raise AriFailure(400, "Channel not found")
            if not ch.in_stasis:
                raise AriFailure(422, "Channel not in Stasis application")
            chans.append(ch)
        for ch in chans:
            if ch.bridge is not None:
                fake.leave_bridge(ch)
            ch.bridge = b.id
            b.channels.append(ch.id)
            fake.emit("ChannelEnteredBridge", bridge=b.json(), channel=ch.json())
        return _ok()

    async def remove_channel(req: web.Request) -> web.Response:
        b = bridge(req)
        for cid in _list(req.query.get("channel")):
            ch = fake.channels.get(cid)
            if ch is None:
                raise AriFailure(400, "Channel not found")
            if ch.id not in b.channels:
                raise AriFailure(422, "Channel not in this bridge")
            fake.leave_bridge(ch)
        return _ok()

    async def bridge_moh(req: web.Request) -> web.Response:
        bridge(req).moh = req.method == "POST"
        return _ok()

    async def bridge_play(req: web.Request) -> web.Response:
        b = bridge(req)
        p = fake.play(req.match_info["playbackId"], f"bridge:{b.id}", tuple(_list(req.query.get("media"))))
        return _json(p.json(), 201)

    # ------------------------------------------------------------------- playbacks, recordings
    async def playback_get(req: web.Request) -> web.Response:
        p = fake.playbacks.get(req.match_info["playbackId"])
        if p is None:
            raise AriFailure(404, "Playback not found")
        return _json(p.json())

    async def playback_stop(req: web.Request) -> web.Response:
        pid = req.match_info["playbackId"]
        if pid not in fake.playbacks:
            raise AriFailure(404, "Playback not found")
        fake.finish_playback(pid)
        return _ok()

    def stored(req: web.Request) -> str:
        name = req.match_info["name"]
        if name not in fake.stored_recordings:
            raise AriFailure(404, "Recording not found")
        return name

    async def stored_list(req: web.Request) -> web.Response:
        return _json([{"name": n, "format": "wav"} for n in sorted(fake.stored_recordings)])

    async def stored_get(req: web.Request) -> web.Response:
        return _json({"name": stored(req), "format": "wav"})

    async def stored_delete(req: web.Request) -> web.Response:
        fake.stored_recordings.discard(stored(req))
        return _ok()

    async def stored_file(req: web.Request) -> web.Response:
        stored(req)
        return web.Response(body=b"RIFF\0\0\0\0WAVE", content_type="audio/wav")

    async def live_stop(req: web.Request) -> web.Response:
        rec = fake.recordings.get(req.match_info["name"])
        if rec is None:
            raise AriFailure(404, "Recording not found")
        fake.finish_recording(rec.channel_id)
        return _ok()

    # ------------------------------------------------------------------- endpoints, devices
    def endpoint(name: str) -> dict[str, Any]:
        tech, res = name.split("/", 1)
        return {"technology": tech, "resource": res, "state": fake.endpoints[name],
                "channel_ids": [c.id for c in fake.channels.values() if c.endpoint == name]}

    async def endpoints_list(req: web.Request) -> web.Response:
        return _json([endpoint(n) for n in fake.endpoints])

    async def endpoint_get(req: web.Request) -> web.Response:
        name = f"{req.match_info['tech']}/{req.match_info['resource']}"
        if name not in fake.endpoints:
            raise AriFailure(404, "Endpoint not found")
        return _json(endpoint(name))

    async def devices_list(req: web.Request) -> web.Response:
        return _json([{"name": n, "state": s} for n, s in fake.device_states.items()])

    async def device_get(req: web.Request) -> web.Response:
        name = req.match_info["name"]
        return _json({"name": name, "state": fake.device_states.get(name, "UNKNOWN")})

    async def sounds(req: web.Request) -> web.Response:
        return _json([])

    ch_, br_ = "/ari/channels/{channelId}", "/ari/bridges/{bridgeId}"
    _dyn = "/ari/asterisk/config/dynamic/{configClass}/{objectType}/{id}"
    table: list[tuple[str, str, Any]] = [
        ("GET", "/ari/asterisk/info", info), ("GET", "/ari/asterisk/ping", ping),
        ("GET", "/ari/asterisk/variable", var_get), ("POST", "/ari/asterisk/variable", var_set),
        ("GET", _dyn, config_get), ("PUT", _dyn, config_put), ("DELETE", _dyn, config_delete),
        ("GET", "/ari/applications/{app}", app_get), ("POST", "/ari/applications/{app}/subscription", subscribe),
        ("DELETE", "/ari/applications/{app}/subscription", unsubscribe),
        ("PUT", "/ari/applications/{app}/eventFilter", event_filter),
        ("GET", "/ari/channels", channels_list), ("GET", ch_, channel_get), ("POST", ch_, originate),
        ("DELETE", ch_, hangup), ("POST", ch_ + "/answer", answer), ("POST", ch_ + "/ring", nothing),
        ("DELETE", ch_ + "/ring", nothing), ("POST", ch_ + "/dtmf", nothing),
        ("POST", ch_ + "/play/{playbackId}", play), ("POST", ch_ + "/record", record),
        ("POST", ch_ + "/moh", moh), ("DELETE", ch_ + "/moh", moh), ("GET", ch_ + "/variable", chan_var_get),
        ("POST", ch_ + "/variable", chan_var_set), ("POST", ch_ + "/continue", cont),
        ("POST", ch_ + "/redirect", nothing), ("GET", ch_ + "/rtp_statistics", rtp),
        ("GET", "/ari/bridges", bridges_list), ("GET", br_, bridge_get), ("POST", br_, bridge_create),
        ("DELETE", br_, bridge_destroy), ("POST", br_ + "/addChannel", add_channel),
        ("POST", br_ + "/removeChannel", remove_channel), ("POST", br_ + "/moh", bridge_moh),
        ("DELETE", br_ + "/moh", bridge_moh), ("POST", br_ + "/play/{playbackId}", bridge_play),
        ("GET", "/ari/playbacks/{playbackId}", playback_get), ("DELETE", "/ari/playbacks/{playbackId}", playback_stop),
        ("GET", "/ari/recordings/stored", stored_list), ("GET", "/ari/recordings/stored/{name}", stored_get),
        ("DELETE", "/ari/recordings/stored/{name}", stored_delete),
        ("GET", "/ari/recordings/stored/{name}/file", stored_file),
        ("POST", "/ari/recordings/live/{name}/stop", live_stop),
        ("GET", "/ari/endpoints", endpoints_list), ("GET", "/ari/endpoints/{tech}/{resource}", endpoint_get),
        ("GET", "/ari/deviceStates", devices_list), ("GET", "/ari/deviceStates/{name}", device_get),
        ("GET", "/ari/sounds", sounds),
    ]
    for method, path, handler in table:
        r.add_route(method, path, handler)
