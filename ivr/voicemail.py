"""Voicemails after they are left: deleting one for real (the recording on Asterisk, then the row), and
retention (messages older than ``voicemail.retention_days`` deleted on a timer).

Deletion order: the recording first, then the row. If Asterisk cannot delete the file now (down, slow), the
row stays and the next sweep tries again; a recording already gone is fine. So a row never points at a
file that was kept, and no file outlives its row by more than a sweep once Asterisk is reachable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .ari import AriError, NotFound
from .sections import section_from_dict

log = logging.getLogger(__name__)

DAY = 86400.0


class VoicemailRows(Protocol):
    def voicemails(self, mailbox: str | None = None) -> list[dict[str, Any]]: ...

    def voicemail(self, voicemail_id: int) -> dict[str, Any] | None: ...

    def voicemails_before(self, created_before: float) -> list[dict[str, Any]]: ...

    def delete_voicemail(self, voicemail_id: int) -> bool: ...


class Recordings(Protocol):
    async def stored_recording_file(self, name: str) -> tuple[bytes, str]: ...

    async def delete_stored_recording(self, name: str) -> None: ...


async def delete_voicemail(rows: VoicemailRows, recordings: Recordings, voicemail_id: int) -> bool:
    """Delete a voicemail's recording and row; False if there was no such voicemail. Raises ``AriError``
    (row kept) when Asterisk cannot delete the recording now."""
    vm = rows.voicemail(voicemail_id)
    if vm is None:
        return False
    try:
        await recordings.delete_stored_recording(vm["recording"])
    except NotFound:
        pass                                   # already gone: the row goes too
    return rows.delete_voicemail(voicemail_id)


class VoicemailConfigError(ValueError):
    """The ``voicemail:`` config section is invalid; the message names the key."""


@dataclass(frozen=True)
class VoicemailPolicy:
    #: Messages older than this many days are deleted (None: kept until deleted through the API).
    retention_days: float | None = None
    #: Seconds between sweeps.
    sweep_seconds: float = 3600.0
    #: mailbox -> queue: a message left in that mailbox becomes work for that queue's agents
    #: (docs/callbacks.md "Voicemail as work"); a mailbox not listed is only stored
    queues: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.queues, Mapping) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in self.queues.items()):
            raise VoicemailConfigError("voicemail.queues: expected a map of mailbox -> queue name")
        d = self.retention_days
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d)
                              or d <= 0):
            raise VoicemailConfigError(f"voicemail.retention_days: expected a number of days > 0 (or null to "
                                       f"keep messages until deleted), got {d!r}")
        s = self.sweep_seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 1:
            raise VoicemailConfigError(f"voicemail.sweep_seconds: expected a number >= 1, got {s!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> VoicemailPolicy:
        return section_from_dict(cls, d, section="voicemail", error=VoicemailConfigError)


class RetentionSweeper:
    def __init__(self, policy: VoicemailPolicy, rows: VoicemailRows, recordings: Recordings,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._rows = rows
        self._recordings = recordings
        self._now = wall_clock
        self.deleted = 0

    async def sweep(self) -> int:
        """Delete what is past retention now; returns how many were deleted."""
        days = self.policy.retention_days
        if days is None:
            return 0
        n = 0
        for vm in self._rows.voicemails_before(self._now() - days * DAY):
            try:
                if await delete_voicemail(self._rows, self._recordings, vm["id"]):
                    n += 1
            except AriError as e:
                log.warning("voicemail %s past retention not deleted yet (Asterisk: %s); next sweep retries",
                            vm["id"], e)
                break
        if n:
            log.info("voicemail retention: %d message(s) older than %g day(s) deleted", n, days)
        self.deleted += n
        return n

    async def run(self) -> None:
        """Sweep every ``sweep_seconds``; the first a minute after start at most (ARI connected by then)."""
        await asyncio.sleep(min(60.0, self.policy.sweep_seconds))
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("voicemail retention sweep failed")
            await asyncio.sleep(self.policy.sweep_seconds)
