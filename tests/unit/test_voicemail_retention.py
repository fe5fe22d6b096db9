"""Deleting voicemails for real and retention (fake rows and recordings, fake wall clock)."""

from __future__ import annotations

import asyncio

from ivr.ari import NotFound, Unavailable
from ivr.voicemail import DAY, VoicemailPolicy, RetentionSweeper, delete_voicemail

NOW = 1_800_000_000.0


class Rows:
    def __init__(self, ages_days: list[float]) -> None:
        self.rows = {i + 1: {"id": i + 1, "recording": f"vm-{i + 1}", "created_at": NOW - a * DAY, "mailbox": "m",
                             "caller": "", "duration": 3.0, "call_id": ""} for i, a in enumerate(ages_days)}

    def voicemails(self, mailbox=None):
        return list(self.rows.values())

    def voicemail(self, voicemail_id):
        return self.rows.get(voicemail_id)

    def voicemails_before(self, created_before):
        return [v for v in self.rows.values() if v["created_at"] < created_before]

    def delete_voicemail(self, voicemail_id):
        return self.rows.pop(voicemail_id, None) is not None


class Recordings:
    def __init__(self, names) -> None:
        self.names = set(names)
        self.down = False

    async def stored_recording_file(self, name):
        return b"RIFF", "audio/wav"

    async def delete_stored_recording(self, name):
        if self.down:
            raise Unavailable("DELETE", f"/recordings/stored/{name}", 0, "timeout")
        if name not in self.names:
            raise NotFound("DELETE", f"/recordings/stored/{name}", 404, "not found")
        self.names.discard(name)


def test_past_retention_the_recording_and_the_row_go_and_newer_ones_stay():
    rows, recs = Rows([40, 31, 29, 1]), Recordings({"vm-1", "vm-2", "vm-3", "vm-4"})
    s = RetentionSweeper(VoicemailPolicy(retention_days=30), rows, recs, lambda: NOW)
    assert asyncio.run(s.sweep()) == 2
    assert sorted(rows.rows) == [3, 4] and recs.names == {"vm-3", "vm-4"}
    assert asyncio.run(s.sweep()) == 0


def test_without_retention_nothing_is_deleted():
    rows = Rows([4000])
    assert asyncio.run(RetentionSweeper(VoicemailPolicy(), rows, Recordings({"vm-1"})).sweep()) == 0
    assert list(rows.rows) == [1]


def test_asterisk_down_keeps_the_row_so_the_next_sweep_deletes_the_file():
    rows, recs = Rows([40]), Recordings({"vm-1"})
    s = RetentionSweeper(VoicemailPolicy(retention_days=30), rows, recs, lambda: NOW)
    recs.down = True
    assert asyncio.run(s.sweep()) == 0 and list(rows.rows) == [1]
    recs.down = False
    assert asyncio.run(s.sweep()) == 1 and rows.rows == {} and recs.names == set()


def test_a_recording_already_gone_still_deletes_the_row_and_an_unknown_id_is_false():
    rows = Rows([1])
    assert asyncio.run(delete_voicemail(rows, Recordings(set()), 1)) is True and rows.rows == {}
    assert asyncio.run(delete_voicemail(rows, Recordings(set()), 99)) is False


def test_the_config_section_is_checked_at_load(tmp_path):
    import pytest

    from ivr.config import ConfigError, load_config
    for bad, word in (("{retention_days: 0}", "retention_days"), ("{retention_days: soon}", "retention_days"),
                      ("{sweep_seconds: 0}", "sweep_seconds"), ("{keep: 3}", "unknown")):
        p = tmp_path / "ivr.yaml"
        p.write_text(f"voicemail: {bad}\n")
        with pytest.raises(ConfigError, match=word):
            load_config(p, env={})
    p.write_text("voicemail: {retention_days: null}\n")
    assert VoicemailPolicy.from_dict(load_config(p, env={}).voicemail).retention_days is None
