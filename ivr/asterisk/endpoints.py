"""An agent's phone as Asterisk's PJSIP objects (endpoint, auth, aor), in one place for both ways they reach
Asterisk: rendered into pjsip.conf at start (``render``) and pushed at run time through ARI's dynamic
configuration (``ari_fields``: ``PUT /asterisk/config/dynamic/res_pjsip/{type}/{id}``) when an agent is added
or changed without a restart. No template inheritance, so both carry exactly the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PjsipObject:
    type: str                                  # endpoint | auth | aor
    id: str
    fields: tuple[tuple[str, str], ...]

    def render(self) -> str:
        body = "".join(f"{k} = {v}\n" for k, v in self.fields)
        return f"[{self.id}]\ntype = {self.type}\n{body}"

    def ari_fields(self) -> list[dict[str, str]]:
        return [{"attribute": k, "value": v} for k, v in self.fields]


def agent_objects(name: str, password: str, *, media_address: str, contact: str = "",
                  webrtc: bool = False) -> tuple[PjsipObject, ...]:
    """The endpoint, auth and aor of agent phone `name` (the part after ``PJSIP/``).

    qualify_frequency = 0: some softphones (pyVoIP) never answer OPTIONS; presence comes from registration
    (ContactStatusChange / EndpointStateChange) instead. `webrtc`: a browser phone over the WebSocket
    transport (DTLS-SRTP, ICE, bundle)."""
    auth_id = f"{name}-auth"
    ep: list[tuple[str, str]] = [
        ("context", "from-agents"), ("auth", auth_id), ("aors", name),
        ("disallow", "all"), ("allow", "ulaw,alaw"), ("direct_media", "no"), ("dtmf_mode", "rfc4733"),
        ("rtp_symmetric", "yes"), ("force_rport", "yes"), ("rewrite_contact", "yes"),
    ]
    if webrtc:
        # webrtc = yes: ICE, DTLS-SRTP with an auto-generated certificate, AVPF, rtcp-mux; bundle = yes as
        # well (22.6+ changes the SSRC when the media source changes, e.g. MOH -> bridge; browsers need
        # bundle then). A media address binds the RTP to it and makes it Asterisk's only ICE candidate;
        # without one Asterisk offers every non-loopback address of the machine.
        ep += [("transport", "transport-ws"), ("webrtc", "yes"), ("bundle", "yes")]
        if media_address:
            ep += [("media_address", media_address), ("bind_rtp_to_media_address", "yes")]
    else:
        ep += [("transport", "transport-udp"), ("media_address", media_address),
               ("bind_rtp_to_media_address", "yes")]
    aor: list[tuple[str, str]] = [("max_contacts", "1"), ("remove_existing", "yes"), ("qualify_frequency", "0")]
    if contact:
        aor.append(("contact", contact.replace("{name}", name)))
    return (
        PjsipObject("endpoint", name, tuple(ep)),
        PjsipObject("auth", auth_id, (("auth_type", "userpass"), ("username", name), ("password", password))),
        PjsipObject("aor", name, tuple(aor)),
    )
