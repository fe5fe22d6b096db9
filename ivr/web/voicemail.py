"""The voicemail API: list the messages, stream one's audio (from Asterisk's stored recordings), delete
one for real. Admins; an agent may also play the voicemail offered to it (on its screen pop, `may_hear`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ..ari import AriError, NotFound
from ..logsafe import mask_number
from ..voicemail import Recordings, VoicemailRows, delete_voicemail
from .errors import ApiError, bad_request, not_found
from .identity import Principal, Role, forbidden, principal_of, require_role


@dataclass(frozen=True)
class VoicemailApi:
    rows: VoicemailRows
    recordings: Recordings
    may_hear: Callable[[Principal, int], bool] = lambda _p, _id: False   # besides admins

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/voicemails", self.index)
        r.add_get("/api/voicemails/{id}/audio", self.audio)
        r.add_delete("/api/voicemails/{id}", self.delete)

    async def index(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        mailbox = request.query.get("mailbox") or None
        rows = self.rows.voicemails(mailbox)
        return web.json_response({"voicemails": [_view(v) for v in rows]})

    async def audio(self, request: web.Request) -> web.Response:
        p = principal_of(request)
        raw = request.match_info["id"]
        if p.role is not Role.ADMIN and not (raw.isdigit() and len(raw) <= 18 and self.may_hear(p, int(raw))):
            raise forbidden("only the voicemail offered to you")
        vm = self._find(request)
        try:
            data, content_type = await self.recordings.stored_recording_file(vm["recording"])
        except NotFound:
            raise ApiError(410, "recording-gone", f"voicemail {vm['id']}: its recording is no longer on "
                                                  "Asterisk") from None
        except AriError:
            raise ApiError(503, "asterisk-unavailable", "Asterisk cannot serve the recording now; "
                                                        "try again") from None
        return web.Response(body=data, content_type=content_type or "audio/wav",
                            headers={"Cache-Control": "no-store",
                                     "Content-Disposition": f'inline; filename="voicemail-{vm["id"]}.wav"'})

    async def delete(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        vm = self._find(request)
        try:
            await delete_voicemail(self.rows, self.recordings, vm["id"])
        except AriError:
            raise ApiError(503, "asterisk-unavailable", "Asterisk cannot delete the recording now; the "
                                                        "voicemail is kept; try again") from None
        return web.Response(status=204)

    def _find(self, request: web.Request) -> dict:
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 18:
            raise bad_request("invalid-request", "a voicemail id is a number")
        vm = self.rows.voicemail(int(raw))
        if vm is None:
            raise not_found("voicemail", raw)
        return vm


def _view(v: dict) -> dict:
    return {"id": v["id"], "mailbox": v["mailbox"], "caller": mask_number(v["caller"]) if v.get("caller") else None,
            "duration": v["duration"], "created_at": v["created_at"], "call_id": v["call_id"],
            "audio": f"/api/voicemails/{v['id']}/audio"}
