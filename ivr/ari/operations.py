"""Every ARI REST operation the client can make, as data: name -> method, path, parameter names.

The client can only send parameters listed here (a typo raises at once), and the contract test checks this
table against the swagger that the real Asterisk serves at /ari/api-docs/. Parameter names are ARI's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Operation:
    method: str
    path: str                       # with {placeholders}, relative to /ari
    query: tuple[str, ...] = ()     # query-string parameters
    body: tuple[str, ...] = ()      # JSON body parameters (ARI's paramType "body")

    @cached_property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{(\w+)\}", self.path))


OPERATIONS: dict[str, Operation] = {
    # asterisk
    "asterisk.info": Operation("GET", "/asterisk/info", ("only",)),
    "asterisk.ping": Operation("GET", "/asterisk/ping"),
    "asterisk.variable_get": Operation("GET", "/asterisk/variable", ("variable",)),
    "asterisk.variable_set": Operation("POST", "/asterisk/variable", ("variable", "value")),
    # dynamic configuration (sorcery objects, e.g. res_pjsip endpoint/auth/aor of an agent's phone)
    "asterisk.config_get": Operation("GET", "/asterisk/config/dynamic/{configClass}/{objectType}/{id}"),
    "asterisk.config_update": Operation("PUT", "/asterisk/config/dynamic/{configClass}/{objectType}/{id}",
                                        (), ("fields",)),
    "asterisk.config_delete": Operation("DELETE", "/asterisk/config/dynamic/{configClass}/{objectType}/{id}"),
    # applications
    "applications.get": Operation("GET", "/applications/{applicationName}"),
    "applications.subscribe": Operation("POST", "/applications/{applicationName}/subscription", ("eventSource",)),
    "applications.unsubscribe": Operation("DELETE", "/applications/{applicationName}/subscription",
                                          ("eventSource",)),
    "applications.filter": Operation("PUT", "/applications/{applicationName}/eventFilter", (), ("filter",)),
    # channels
    "channels.list": Operation("GET", "/channels"),
    "channels.get": Operation("GET", "/channels/{channelId}"),
    "channels.originate": Operation(
        "POST", "/channels/{channelId}",
        ("endpoint", "extension", "context", "priority", "label", "app", "appArgs", "callerId", "timeout",
         "otherChannelId", "originator", "formats"), ("variables",)),
    "channels.hangup": Operation("DELETE", "/channels/{channelId}", ("reason_code", "reason")),
    "channels.answer": Operation("POST", "/channels/{channelId}/answer"),
    "channels.ring": Operation("POST", "/channels/{channelId}/ring"),
    "channels.ring_stop": Operation("DELETE", "/channels/{channelId}/ring"),
    "channels.dtmf": Operation("POST", "/channels/{channelId}/dtmf",
                               ("dtmf", "before", "between", "duration", "after")),
    "channels.play": Operation("POST", "/channels/{channelId}/play/{playbackId}",
                               ("media", "lang", "offsetms", "skipms")),
    "channels.record": Operation("POST", "/channels/{channelId}/record",
                                 ("name", "format", "maxDurationSeconds", "maxSilenceSeconds", "ifExists",
                                  "beep", "terminateOn")),
    "channels.moh_start": Operation("POST", "/channels/{channelId}/moh", ("mohClass",)),
    "channels.moh_stop": Operation("DELETE", "/channels/{channelId}/moh"),
    "channels.var_get": Operation("GET", "/channels/{channelId}/variable", ("variable",)),
    "channels.var_set": Operation("POST", "/channels/{channelId}/variable", ("variable", "value")),
    "channels.continue": Operation("POST", "/channels/{channelId}/continue",
                                   ("context", "extension", "priority", "label")),
    "channels.redirect": Operation("POST", "/channels/{channelId}/redirect", ("endpoint",)),
    "channels.rtp_statistics": Operation("GET", "/channels/{channelId}/rtp_statistics"),
    # bridges
    "bridges.list": Operation("GET", "/bridges"),
    "bridges.get": Operation("GET", "/bridges/{bridgeId}"),
    "bridges.create": Operation("POST", "/bridges/{bridgeId}", ("type", "name")),
    "bridges.destroy": Operation("DELETE", "/bridges/{bridgeId}"),
    "bridges.add_channel": Operation("POST", "/bridges/{bridgeId}/addChannel",
                                     ("channel", "role", "absorbDTMF", "mute", "inhibitConnectedLineUpdates")),
    "bridges.remove_channel": Operation("POST", "/bridges/{bridgeId}/removeChannel", ("channel",)),
    "bridges.moh_start": Operation("POST", "/bridges/{bridgeId}/moh", ("mohClass",)),
    "bridges.moh_stop": Operation("DELETE", "/bridges/{bridgeId}/moh"),
    "bridges.play": Operation("POST", "/bridges/{bridgeId}/play/{playbackId}",
                              ("media", "lang", "offsetms", "skipms")),
    # playbacks
    "playbacks.get": Operation("GET", "/playbacks/{playbackId}"),
    "playbacks.stop": Operation("DELETE", "/playbacks/{playbackId}"),
    # recordings
    "recordings.stored_list": Operation("GET", "/recordings/stored"),
    "recordings.stored_get": Operation("GET", "/recordings/stored/{recordingName}"),
    "recordings.stored_delete": Operation("DELETE", "/recordings/stored/{recordingName}"),
    "recordings.stored_file": Operation("GET", "/recordings/stored/{recordingName}/file"),
    "recordings.live_stop": Operation("POST", "/recordings/live/{recordingName}/stop"),
    # endpoints / device states / sounds
    "endpoints.list": Operation("GET", "/endpoints"),
    "endpoints.get": Operation("GET", "/endpoints/{tech}/{resource}"),
    "device_states.list": Operation("GET", "/deviceStates"),
    "device_states.get": Operation("GET", "/deviceStates/{deviceName}"),
    "sounds.list": Operation("GET", "/sounds", ("lang", "format")),
}
