from ivr.storage import Storage


def test_call_records_survive_reopen_and_shift_to_wall_clock(tmp_path):
    db = tmp_path / "ivr.db"
    s = Storage(db)
    s.add_call_record({"call_id": "c1", "queue": "billing", "agent_id": "agent1", "outcome": "answered",
                       "priority": 0, "entered_at": 10.0, "offered_at": 12.0, "answered_at": 13.0,
                       "ended_at": 40.0, "wait_time": 3.0, "talk_time": 27.0, "offers": 1, "rona_count": 0,
                       "short_abandon": False, "within_service_level": True},
                      wall_offset=1000.0, caller="+15550100", did="100", flow="support")
    s.close()
    rows = Storage(db).call_records("billing")
    assert len(rows) == 1
    r = rows[0]
    assert (r["call_id"], r["agent_id"], r["outcome"], r["entered_at"], r["answered_at"]) == \
        ("c1", "agent1", "answered", 1010.0, 1013.0)
    assert r["within_sl"] == 1 and r["wait_seconds"] == 3.0 and r["did"] == "100"


def test_voicemail_and_callback(tmp_path):
    s = Storage(tmp_path / "x.db")
    vid = s.add_voicemail("support", "+15550100", "vm-abc", 4.5, "c2", at=5.0)
    cid = s.add_callback("+15550101", "billing", "c3", at=6.0)
    assert s.voicemails("support") == [{"id": vid, "mailbox": "support", "caller": "+15550100",
                                        "recording": "vm-abc", "duration": 4.5, "created_at": 5.0,
                                        "call_id": "c2"}]
    assert [c["number"] for c in s.callbacks()] == ["+15550101"] and s.callbacks()[0]["id"] == cid
    assert s.voicemails("other") == []


def test_both_sqlite_connections_have_a_small_bounded_page_cache(tmp_path):
    """The default 2 MB cache per connection filled over ~20 min of soak and grew the process
    (bench/README.md, "Soak"); both file-backed connections are capped at SQLITE_CACHE_KIB."""
    from ivr.crm.store import SqliteCrm
    from ivr.storage import SQLITE_CACHE_KIB

    assert 0 < SQLITE_CACHE_KIB <= 1024
    s = Storage(tmp_path / "ivr.db")
    crm = SqliteCrm(tmp_path / "crm.db")
    try:
        assert s._db.execute("PRAGMA cache_size").fetchone()[0] == -SQLITE_CACHE_KIB
        assert crm._run(lambda db: db.execute("PRAGMA cache_size").fetchone()[0]) == -SQLITE_CACHE_KIB
    finally:
        s.close()
        crm._run(lambda db: db.close())
