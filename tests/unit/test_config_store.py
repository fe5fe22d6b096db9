"""The live configuration store (ivr/settings): the file seeds what the store has never seen, the store wins
afterwards (changes and removals survive a reopen), clear() lets the file seed again."""

from __future__ import annotations

import pytest

from ivr.settings import SqliteConfigStore


def key(d):
    return d["id"]


def test_seed_then_store_wins(tmp_path):
    path = tmp_path / "ivr.sqlite"
    s = SqliteConfigStore(path)
    assert s.seed("agent", [{"id": "a1", "skills": {"x": 1}}, {"id": "a2"}], key, 1.0) == ["a1", "a2"]
    s.put("agent", "a1", {"id": "a1", "skills": {"x": 5}}, 2.0)        # changed through the API
    assert s.delete("agent", "a2", 3.0) and not s.delete("agent", "a2", 3.0)
    s.put("agent", "a3", {"id": "a3", "sip_password": "pw-pw-pw-1"}, 4.0)
    s.close()
    s = SqliteConfigStore(path)                                          # a restart: the file seeds again
    assert s.seed("agent", [{"id": "a1"}, {"id": "a2"}, {"id": "a4"}], key, 5.0) == ["a4"]
    assert s.definitions("agent") == [{"id": "a1", "skills": {"x": 5}}, {"id": "a3", "sip_password": "pw-pw-pw-1"},
                                      {"id": "a4"}]
    assert s.definitions("queue") == []
    s.put("agent", "a2", {"id": "a2", "name": "back"}, 6.0)              # a removed id can come back
    assert [d["id"] for d in s.definitions("agent")] == ["a1", "a2", "a3", "a4"]
    s.clear()
    assert s.seed("agent", [{"id": "a1"}], key, 7.0) == ["a1"] and s.definitions("agent") == [{"id": "a1"}]
    s.close()


def test_kinds_are_separate_and_checked():
    s = SqliteConfigStore()
    s.seed("queue", [{"name": "billing"}], lambda d: d["name"], 1.0)
    s.put("agent", "billing", {"id": "billing"}, 1.0)
    assert s.definitions("queue") == [{"name": "billing"}]
    assert s.definitions("agent") == [{"id": "billing"}]
    with pytest.raises(ValueError):
        s.definitions("user")       # type: ignore[arg-type]
