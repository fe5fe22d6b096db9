"""Embedded SQLite CRM store (ivr.crm.store): sample data, CSV import, history, safety."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from ivr.crm.importer import CsvImportError
from ivr.crm.model import Customer, Interaction, LookupStatus
from ivr.crm.rules import fcr
from ivr.crm.store import SqliteCrm

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "crm" / "sample_customers.yaml"
DAY = 86400.0
HEADER = "customer_id,name,phones,tier,language\n"


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(clock: FakeClock):
    s = SqliteCrm(":memory:", default_region="GB", repeat_window_seconds=DAY, clock=clock)
    report = await s.load_sample(SAMPLE)
    assert report.ok, report
    yield s
    await s.close()


async def test_sample_customers_are_found_by_any_of_their_numbers(store: SqliteCrm) -> None:
    assert await store.customer_count() == 5
    vip = await store.lookup("+442079460001")
    assert vip.status is LookupStatus.FOUND and vip.customer is not None
    assert vip.customer.tier == "vip"
    assert [t.id for t in vip.customer.open_tickets] == ["T-5001"]  # the closed one is not "open"
    assert (await store.lookup("+12125550101")).customer == vip.customer  # second number, same customer
    legacy = await store.lookup("+442079460002")
    assert legacy.customer is not None and legacy.customer.tier == "legacy"
    standard = await store.lookup("+442079460003")  # was written in national format in the YAML
    assert standard.customer is not None and standard.customer.tier == "standard"
    french = await store.lookup("+12125550104")
    assert french.customer is not None and french.customer.language == "fr"
    assert french.customer.name == "Élodie Martin"
    owned = await store.lookup("+442079460055")
    assert owned.customer is not None and owned.customer.preferred_agent == "agent1"
    assert owned.as_flow_vars()["customer.preferred_agent"] == "agent1"


async def test_unknown_and_withheld_numbers(store: SqliteCrm) -> None:
    r = await store.lookup("+442079460999")
    assert r.status is LookupStatus.NOT_FOUND and r.customer is None
    for bad in (None, "", "anonymous", "'; DROP TABLE phones; --"):
        assert (await store.lookup(bad)).status is LookupStatus.ANONYMOUS
    assert store.stats.by_status["not_found"] == 1
    assert store.stats.by_status["anonymous"] == 4


async def test_csv_with_bad_rows_imports_nothing_and_reports_every_bad_line(
    store: SqliteCrm, tmp_path: Path
) -> None:
    f = tmp_path / "customers.csv"
    f.write_text(
        HEADER
        + "N1,New One,+44 20 7946 0201,standard,en\n"  # 2 ok
        + "N2,Bad Phone,12,standard,en\n"  # 3 bad
        + "N3,Stolen Number,+44 20 7946 0001,standard,en\n"  # 4 belongs to C1001 already
        + "N4,New Four,+44 20 7946 0204,vip,de\n",  # 5 ok
        encoding="utf-8",
    )
    report = await store.import_csv(f)
    assert not report.committed and report.imported == 0
    assert [e.line for e in report.rejected] == [3, 4]
    assert "belongs to customer 'C1001'" in report.rejected[1].message
    assert (await store.lookup("+442079460201")).status is LookupStatus.NOT_FOUND  # nothing written
    assert (await store.lookup("+442079460001")).customer.customer_id == "C1001"  # type: ignore[union-attr]

    partial = await store.import_csv(f, partial=True)
    assert partial.committed and partial.imported == 2
    assert [e.line for e in partial.rejected] == [3, 4]
    assert (await store.lookup("+442079460204")).customer.language == "de"  # type: ignore[union-attr]
    assert await store.customer_count() == 7


async def test_csv_reimport_updates_customer_and_replaces_numbers(store: SqliteCrm, tmp_path: Path) -> None:
    f = tmp_path / "update.csv"
    f.write_text(HEADER + "C1003,Sam Upgraded,+44 20 7946 0303,vip,fr\n", encoding="utf-8")
    assert (await store.import_csv(f)).ok
    r = await store.lookup("+442079460303")
    assert r.customer is not None and (r.customer.name, r.customer.tier) == ("Sam Upgraded", "vip")
    assert (await store.lookup("+442079460003")).status is LookupStatus.NOT_FOUND  # old number gone


async def test_unreadable_csv_files_raise_clearly(store: SqliteCrm, tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(HEADER.encode() + "C7,Jos\xe9,+44 20 7946 0207,,\n".encode("latin-1"))
    with pytest.raises(CsvImportError, match=r"line 2: file is not UTF-8"):
        await store.import_csv(latin1)
    with pytest.raises(CsvImportError, match="cannot read"):
        await store.import_csv(tmp_path / "missing.csv")


async def test_interaction_history_repeat_flag_and_last_agent(store: SqliteCrm, clock: FakeClock) -> None:
    number = "+442079460005"
    now = clock.t
    first = await store.lookup(number)
    assert not first.repeat_caller and first.last_agent is None
    await store.record_interaction(
        number,
        Interaction(
            at=now - 2 * DAY,
            call_id="c1",
            did="+442079460900",
            ivr_path=("welcome", "menu:2", "billing"),
            keys="2",
            queue="billing",
            wait_seconds=12.5,
            agent_id="agent3",
            outcome="answered",
            duration_seconds=200,
        ),
    )
    r = await store.lookup(number)
    assert not r.repeat_caller  # two days ago, window is one day
    assert r.last_agent == "agent3"
    await store.record_interaction(number, Interaction(at=now - 3600, call_id="c2", outcome="abandoned"))
    r = await store.lookup(number)
    assert r.repeat_caller and r.as_flow_vars()["customer.repeat"] is True
    assert r.last_agent == "agent3"  # the abandoned call had no agent

    recent = await store.recent_interactions(number, limit=10)
    assert [i.call_id for i in recent] == ["c2", "c1"]  # newest first
    assert recent[1].ivr_path == ("welcome", "menu:2", "billing")
    assert recent[1].customer_id == "C1005"  # attributed from the number
    assert recent[1].caller == number
    assert [i.call_id for i in await store.recent_interactions(number, limit=1)] == ["c2"]

    clock.t += DAY
    assert not (await store.lookup(number)).repeat_caller  # window passed

    history = await store.interactions_between(now - 10 * DAY, now + 1)
    assert fcr(history, DAY, clock.t).per_call == (True, True)  # 2 days apart: both resolved
    assert await store.prune_interactions(now - DAY) == 1


async def test_withheld_callers_are_recorded_without_a_number(store: SqliteCrm, clock: FakeClock) -> None:
    await store.record_interaction(None, Interaction(at=clock.t, call_id="anon"))
    rows = await store.interactions_between(0, clock.t + 1)
    assert [(i.call_id, i.caller, i.customer_id) for i in rows] == [("anon", None, None)]


INJECTIONS = [
    "x'); DROP TABLE customers;--",
    "' OR '1'='1",
    'Robert"); DELETE FROM phones; --',
    "%_\\",
]


async def test_injection_strings_and_unicode_round_trip(store: SqliteCrm) -> None:
    for n, evil in enumerate(INJECTIONS):
        c = Customer(
            customer_id=evil,
            name=f"Zoë 李小龍 Ñandú 🙂 {evil}",
            account_id=evil,
            phones=(f"+4420794606{n:02d}",),
            tier=evil[:30],
            language="fr",
            preferred_agent=evil,
            notes="multi\nline \u202e rtl \x7f" + evil,
            extra={"k": evil, "emoji": "🙂"},
        )
        await store.upsert_customer(c)
        got = (await store.lookup(f"+4420794606{n:02d}")).customer
        assert got == c
        assert await store.get_customer(evil) == c
        await store.record_interaction(
            c.phones[0],
            Interaction(
                at=1.0,
                call_id=evil,
                did=evil,
                ivr_path=(evil, "🙂"),
                keys="*#",
                queue=evil,
                agent_id=evil,
                outcome=evil,
            ),
        )
        (i,) = await store.recent_interactions(c.phones[0])
        assert (i.call_id, i.ivr_path, i.agent_id, i.customer_id) == (evil, (evil, "🙂"), evil, evil)
    assert await store.customer_count() == 5 + len(INJECTIONS)  # tables intact
    assert (await store.lookup("+442079460001")).status is LookupStatus.FOUND


async def test_upsert_refuses_a_number_of_another_customer(store: SqliteCrm) -> None:
    with pytest.raises(ValueError, match="already belongs"):
        await store.upsert_customer(Customer(customer_id="NEW", phones=("+442079460001",)))
    assert await store.get_customer("NEW") is None  # rolled back


async def test_file_database_uses_wal_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "crm.sqlite"
    s = SqliteCrm(path)
    assert s.journal_mode == "wal"
    await s.load_sample(SAMPLE)
    # Concurrent lookups from many "calls" at once are serialised safely.
    results = await asyncio.gather(*(s.lookup("+442079460001") for _ in range(40)))
    assert all(r.found for r in results)
    await s.close()
    s2 = SqliteCrm(path)
    assert await s2.customer_count() == 5
    await s2.close()


async def test_phone_numbers_are_masked_in_every_log_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ivr.crm")
    s = SqliteCrm(":memory:")
    await s.load_sample(SAMPLE)
    f = tmp_path / "bad.csv"
    f.write_text(
        HEADER + "Z1,Dup,+44 20 7946 0001,,\nZ2,Bad,12,,\nZ3,Ok,+44 20 7946 0777,,\n", encoding="utf-8"
    )
    await s.import_csv(f)
    await s.import_csv(f, partial=True)
    for n in ("+442079460001", "+442079460777", "+442079460999"):
        await s.lookup(n)
        await s.record_interaction(n, Interaction(at=1.0))
    await s.close()
    # After close every operation fails; failures are logged, masked, and never raise into the caller.
    await s.record_interaction("+442079460001", Interaction(at=2.0))
    assert (await s.lookup("+442079460001")).status is LookupStatus.ERROR
    assert s.stats.history_errors == 1
    assert caplog.records, "expected some logging"
    full_number = re.compile(r"\d{7,}")
    for rec in caplog.records:
        text = rec.getMessage()
        assert not full_number.search(text.replace(" ", "")), text
