"""Bad input through the CRM backends: an HTTP CRM on loopback answering garbage, huge or hostile JSON, and the
embedded SQLite store fed SQL injection strings, unicode and very long values. Lookups never raise, text comes
back clean, the tables survive, and no full phone number reaches a log record."""

from __future__ import annotations

import json
import logging
import unicodedata

import pytest
from aiohttp import web

from ivr.crm.http import HttpCrm, HttpCrmConfig
from ivr.crm.lookup import GuardedLookup
from ivr.crm.model import MAX_TEXT, Customer, Interaction, LookupStatus, Ticket
from ivr.crm.store import SqliteCrm

pytestmark = pytest.mark.timeout(60)

NUMBER = "+442079460018"
NATIONAL = "2079460018"
INJECTIONS = ["'; DROP TABLE customers;--", "' OR '1'='1", "\"; DELETE FROM phones; --", "1); DROP TABLE x;--",
              "Robert'); DROP TABLE interactions;--", "%' OR 1=1 --", "\\'; SELECT sqlite_version();--"]


def _clean(s: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c == "\u202e" for c in s)


def _no_number_in_logs(caplog) -> None:
    for r in caplog.records:
        text = r.getMessage() + (r.exc_text or "")
        assert NATIONAL not in text and NUMBER not in text, text


class GarbageCrm:
    """A CRM that answers every lookup with `body` (bytes) and `content_type`."""

    def __init__(self) -> None:
        self.body: bytes = b"{}"
        self.content_type = "application/json"
        self.status = 200
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.body, status=self.status, headers={"Content-Type": self.content_type})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/c", self.handler)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def garbage_crm():
    server = GarbageCrm()
    await server.start()
    cfg = HttpCrmConfig.from_dict({
        "url": f"http://127.0.0.1:{server.port}/c?phone={{e164}}", "timeout_ms": 2000,
        "mapping": {"record": "data", "customer_id": "id", "name": "name", "notes": "notes", "tier": "tier",
                    "tickets": {"path": "tickets"}, "extra": {"segment": "segment"}},
        "cache": {"ttl_seconds": 0.000001, "negative_ttl_seconds": 0.000001},
        "breaker": {"failure_threshold": 1000},
    }, env={})
    crm = HttpCrm(cfg, history=SqliteCrm(":memory:"))
    yield server, GuardedLookup(crm, budget_seconds=3.0)
    await crm.close()
    assert server.runner is not None
    await server.runner.cleanup()


def _doc(**record) -> bytes:
    return json.dumps({"data": {"id": "C1", **record}}).encode()


GARBAGE_BODIES = [
    (b"", "bad_json"), (b"\x00\xff\xfe garbage", "bad_json"), (b"<html>login</html>", "bad_json"),
    (b"[" * 100_000 + b"]" * 100_000, "bad_json"),                # deeper than the JSON decoder's stack
    (b'{"data": {"id": "C1", "name": "caf\xe9"}}', "bad_json"),    # Latin-1, not UTF-8
    (b'"just a string"', "bad_document"), (b"12345", "bad_document"), (b"true", "bad_document"),
    (b'{"data": {"id": {"nested": true}}}', "bad_document"), (b'{"data": [1, 2, 3]}', "bad_document"),
    (b'{"data": {"id": "C1", "name": "' + b"x" * 300_000 + b'"}}', "too_large"),   # above max_body_bytes
    (b'{"data": {"id": ' + b"9" * 5000 + b"}}", "bad_json"),      # int longer than Python will parse
]


@pytest.mark.parametrize("body, detail", GARBAGE_BODIES, ids=lambda v: repr(v[:20]) if isinstance(v, bytes) else v)
async def test_garbage_crm_answers_are_errors_never_exceptions(garbage_crm, body, detail, caplog):
    caplog.set_level(logging.DEBUG)
    server, crm = garbage_crm
    server.body = body
    result = await crm.lookup_caller("020 7946 0018")
    assert result.status is LookupStatus.ERROR and result.customer is None, result
    assert result.detail == detail
    assert result.as_flow_vars()["customer.known"] is False
    _no_number_in_logs(caplog)


@pytest.mark.parametrize("record", [
    {"name": "Eve\r\nX-Injected: 1", "notes": "a\x00b\r\nc", "tier": "VIP\x1b[0m"},
    {"name": "\u202eecilA", "tickets": [{"id": "T\n1", "subject": "\x07bell"}] * 50},
    {"name": "x" * 200_000},
    {"name": "李小龍 🙂 Élodie", "segment": "ünïcödé"},
    {"name": "NaN", "segment": None, "tier": ["vip"]},
    {"name": INJECTIONS[0], "notes": INJECTIONS[1]},
    {"name": '"quoted" <sip:x@y> \\'},
])
async def test_hostile_crm_fields_come_back_clean(garbage_crm, record, caplog):
    caplog.set_level(logging.DEBUG)
    server, crm = garbage_crm
    server.body = _doc(**record)
    result = await crm.lookup(NUMBER)
    assert result.status is LookupStatus.FOUND, result
    c = result.customer
    assert c is not None
    for value in (c.name, c.tier, c.account_id or "", *(t.id for t in c.open_tickets),
                  *(t.subject for t in c.open_tickets)):
        assert _clean(value) and len(value) <= MAX_TEXT, repr(value)
    assert len(c.open_tickets) <= 20
    flow_vars = result.as_flow_vars()
    assert all(_clean(v) for v in flow_vars.values() if isinstance(v, str))
    if record["name"] == "李小龍 🙂 Élodie":
        assert c.name == "李小龍 🙂 Élodie" and flow_vars["customer.extra.segment"] == "ünïcödé"
    _no_number_in_logs(caplog)


async def test_nan_and_infinity_in_crm_json_are_not_numbers_for_flows(garbage_crm):
    server, crm = garbage_crm
    server.body = b'{"data": {"id": "C1", "name": "n", "segment": NaN, "tier": Infinity}}'
    result = await crm.lookup(NUMBER)
    assert result.status is LookupStatus.FOUND and result.customer is not None
    assert "customer.extra.segment" not in result.as_flow_vars()
    assert result.customer.tier == "standard"


# -------------------------------------------------------------------------------------- SQLite store
@pytest.fixture
async def store():
    s = SqliteCrm(":memory:", default_region="GB")
    yield s
    await s.close()


async def _tables_intact(store: SqliteCrm) -> None:
    names = store._run(lambda db: sorted(r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")))
    assert names == ["customers", "interactions", "phones", "tickets"]


@pytest.mark.parametrize("evil", INJECTIONS)
async def test_sql_injection_strings_are_just_data(store, evil, caplog):
    caplog.set_level(logging.DEBUG)
    c = Customer(customer_id=evil, name=evil, account_id=evil, phones=(NUMBER,), tier=evil, notes=evil,
                 preferred_agent=evil, open_tickets=(Ticket(evil, evil, "open"),), extra={evil: evil})
    await store.upsert_customer(c)
    assert await store.customer_count() == 1
    got = await store.get_customer(evil)
    assert got == c
    found = await store.lookup(NUMBER)
    assert found.status is LookupStatus.FOUND and found.customer == c
    assert (await store.get_customer("' OR '1'='1' --")) is None or evil == "' OR '1'='1"
    # injection strings where a number is expected: refused before any query
    assert (await store.lookup(evil)).status is LookupStatus.ANONYMOUS
    assert await store.recent_interactions(evil) == []
    await store.record_interaction(evil, Interaction(at=1.0, call_id=evil, did=evil, ivr_path=(evil,), keys=evil,
                                                     queue=evil, agent_id=evil, outcome=evil, customer_id=evil))
    await store.record_interaction(NUMBER, Interaction(at=2.0, call_id=evil, ivr_path=(evil, "x"), keys="1"))
    hist = await store.recent_interactions(NUMBER)
    assert [h.call_id for h in hist] == [evil] and hist[0].ivr_path == (evil, "x")
    await _tables_intact(store)
    _no_number_in_logs(caplog)


async def test_unicode_and_long_values_round_trip(store):
    c = Customer(customer_id="C-李", name="Zoë 李 🙂 محمد", phones=(NUMBER,), notes="ligne 1\nligne 2 — ü",
                 extra={"clé": "välue", "n": 3})
    await store.upsert_customer(c)
    assert (await store.lookup(NUMBER)).customer == c
    long = Customer(customer_id="C2", name="y" * 100_000, phones=("+442079460019",), notes="z" * 100_000)
    await store.upsert_customer(long)
    got = await store.get_customer("C2")
    assert got is not None and len(got.name) == MAX_TEXT and got.name == long.name
    await _tables_intact(store)


async def test_rows_written_by_an_older_version_are_cleaned_on_read(store):
    """A row with control characters already in the database (written before the cleaning) comes back clean."""
    await store.upsert_customer(Customer(customer_id="C1", name="placeholder", phones=(NUMBER,)))
    store._run(lambda db: db.execute("UPDATE customers SET name = ?, extra = ? WHERE customer_id = 'C1'",
                                     ("Eve\r\nX-Injected: 1\x00\u202e", "{not json")))
    got = (await store.lookup(NUMBER)).customer
    assert got is not None and got.name == "Eve X-Injected: 1" and dict(got.extra) == {}


async def test_csv_import_with_hostile_rows(store, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,name,phones\n"
                    f"\"{INJECTIONS[0]}\",\"{INJECTIONS[1]}\",+44 20 7946 0018\n"
                    "C2,\"Eve\x1b[2J\",+44 20 7946 0019\n"
                    "C3,\"Zoë 🙂\",+44 20 7946 0020\n", encoding="utf-8")
    report = await store.import_csv(path, partial=True)
    assert report.imported == 2 and [e.line for e in report.rejected] == [3]
    assert (await store.get_customer(INJECTIONS[0])).name == INJECTIONS[1]
    await _tables_intact(store)
    path.write_bytes(b"customer_id,name,phones\nC9,caf\xe9,+44 20 7946 0021\n")
    with pytest.raises(ValueError, match="line 2: file is not UTF-8"):
        await store.import_csv(path)
