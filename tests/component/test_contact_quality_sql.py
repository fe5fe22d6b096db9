"""The embedded store's contact-quality report in SQL (``SqliteCrm.contact_quality``) gives exactly the figures
of the pure rule (``rules.contact_quality``) over the same history: random histories with repeat callers,
known customers with several numbers, withheld numbers, calls without a queue, task entries and calls on
the window's edges."""

from __future__ import annotations

import asyncio
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.crm.model import Interaction, InteractionKind
from ivr.crm.quality import ContactQualityReporter
from ivr.crm.rules import contact_quality
from ivr.crm.store import SqliteCrm

NOW = 1_800_000_000.0
W, R = 3600.0, 1800.0


def _history(seed: int, n: int) -> list[tuple[str | None, Interaction]]:
    rng = random.Random(seed)
    out = []
    edges = [NOW, NOW - W, NOW - R, NOW - R - W, NOW - W - R]
    for k in range(n):
        at = rng.choice(edges) if rng.random() < 0.15 else NOW - rng.uniform(0, W + R + 600)
        number = rng.choice([None, "", "+442070000001", "+442070000002", "+442070000003", "+33140000000"])
        customer = rng.choice([None, None, "", "cust-a", "cust-b"])
        kind = InteractionKind.TASK if rng.random() < 0.1 else InteractionKind.CALL
        out.append((number, Interaction(
            at=at, call_id=f"c{k}", did="100", queue=rng.choice([None, "", "billing", "sales"]),
            outcome=rng.choice(["answered", "abandoned", "timeout"]), customer_id=customer, kind=kind)))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(0, 120))
def test_sql_report_equals_the_rule(tmp_path, seed: int, n: int) -> None:
    async def run() -> None:
        store = SqliteCrm(tmp_path / f"crm-{seed}-{n}.sqlite")
        try:
            for number, i in _history(seed, n):
                # the store keeps the number given, and the customer of the interaction as recorded
                await store.record_interaction(number, i)
            stored = await store.interactions_between(NOW - W - R - 10_000, NOW + 10)
            expected = contact_quality(stored, NOW, W, R)
            assert await store.contact_quality(NOW, W, R) == expected
        finally:
            await store.close()
    asyncio.run(run())


async def test_the_reporter_uses_the_store_query(tmp_path) -> None:
    store = SqliteCrm(tmp_path / "crm.sqlite")
    try:
        for number, i in _history(7, 200):
            await store.record_interaction(number, i)
        seen = []
        reporter = ContactQualityReporter(store, seen.append, window_seconds=W, repeat_window_seconds=R,
                                          clock=lambda: NOW)

        async def no_rows(start: float, end: float) -> list:     # the report must not read the rows
            raise AssertionError("the embedded store's report is computed in SQL")
        store.interactions_between = no_rows  # type: ignore[method-assign]
        report = await reporter.refresh()
        assert seen == [report] and report and any(q.first_calls + q.repeat_calls for q in report.values())
    finally:
        await store.close()
