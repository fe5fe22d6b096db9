"""Admission control's rule (pure, fake clock) and the gate that carries it to Asterisk (fake ARI)."""

from __future__ import annotations

import asyncio

import pytest

from ivr.admission import Admission, AdmissionConfigError, AdmissionPolicy
from ivr.ari import Unavailable
from ivr.calls.gate import SHED_FLAG, SHED_TOTAL, AdmissionGate
from ivr.config import ConfigError, load_config


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(calls: list[int] | None = None, **policy):
    clock = Clock()
    box = calls if calls is not None else [0]
    return Admission(AdmissionPolicy(**policy), clock, lambda: box[0]), clock, box


def test_open_when_quiet_and_closed_at_once_by_event_lag():
    a, clock, _ = make(max_event_lag=0.3)
    a.lag(0.02)
    assert a.admit() is None
    a.lag(0.35)
    assert a.admit() == "event_lag"
    st = a.evaluate()
    assert not st.open and st.reason == "event_lag" and st.event_lag == pytest.approx(0.35)


def test_ari_latency_closes_the_gate():
    a, _, _ = make(max_ari_latency=1.0)
    a.ari_latency(0.2)
    assert a.admit() is None
    a.ari_latency(1.2)
    assert a.admit() == "ari_latency"


def test_reopens_only_after_recover_seconds_of_calm():
    a, clock, _ = make(max_event_lag=0.3, recover_seconds=2.0, resume_ratio=0.5, decay=1.0)
    a.lag(1.0)
    assert a.admit() == "event_lag"
    # the peak decays: 1.0 * exp(-t) < 0.15 after ~1.9 s; then 2 s of calm are needed
    clock.t += 1.0
    assert a.admit() == "event_lag"           # 0.37: above the limit still
    clock.t += 1.0
    assert a.admit() == "event_lag"           # 0.135: calm starts now
    clock.t += 1.9
    assert a.admit() == "event_lag"           # calm for 1.9 s only
    clock.t += 0.2
    assert a.admit() is None                  # calm for 2.1 s: open


def test_a_new_spike_during_the_calm_restarts_it():
    a, clock, _ = make(max_event_lag=0.3, recover_seconds=2.0, decay=0.5)
    a.lag(0.5)
    a.evaluate()
    clock.t += 2.0                             # 0.5 * exp(-4) = 0.009: calm from here
    assert not a.evaluate().open
    clock.t += 1.5
    a.lag(0.2)                                 # below the limit, above resume_ratio x limit: not calm
    assert not a.evaluate().open
    clock.t += 1.0                             # 0.2 * exp(-2) = 0.027: calm again from here
    assert not a.evaluate().open
    clock.t += 1.9
    assert not a.evaluate().open
    clock.t += 0.2
    assert a.evaluate().open


def test_capacity_refuses_each_call_beyond_max_calls_and_opens_as_soon_as_a_call_ends():
    a, clock, calls = make(max_calls=3)
    calls[0] = 2
    assert a.admit() is None
    calls[0] = 3
    assert a.admit() == "capacity"
    assert a.evaluate().reason == "capacity"
    calls[0] = 2
    assert a.admit() is None                   # no recover wait for capacity alone
    assert a.evaluate().open


def test_capacity_applies_even_while_the_gate_is_open():
    a, clock, calls = make(max_calls=1, max_event_lag=0.3)
    calls[0] = 1
    assert a.admit() == "capacity"


def test_disabled_admits_everything():
    a, _, calls = make(enabled=False, max_calls=1)
    calls[0] = 50
    a.lag(10)
    a.ari_latency(10)
    assert a.admit() is None
    assert a.evaluate().open


def test_bad_samples_are_ignored():
    a, _, _ = make()
    a.lag(float("nan"))
    a.ari_latency(-5)
    assert a.admit() is None


@pytest.mark.parametrize("bad", [
    {"max_calls": 0}, {"max_calls": "10"}, {"max_calls": True}, {"max_event_lag": 0}, {"max_event_lag": "x"},
    {"max_ari_latency": float("inf")}, {"recover_seconds": -1}, {"resume_ratio": 0}, {"resume_ratio": 1.5},
    {"enabled": "yes"}, {"decay": 0}, {"max_wait": 3},
])
def test_policy_rejects_bad_values_with_the_key_named(bad):
    with pytest.raises(AdmissionConfigError) as e:
        AdmissionPolicy.from_dict(bad)
    assert next(iter(bad)) in str(e.value)


def test_config_section_is_validated_at_load(tmp_path):
    p = tmp_path / "ivr.yaml"
    p.write_text("admission:\n  max_calls: -3\n")
    with pytest.raises(ConfigError, match="admission.max_calls"):
        load_config(p, env={})
    p.write_text("admission:\n  max_calls: 40\n  max_event_lag: 0.2\n")
    cfg = load_config(p, env={})
    assert AdmissionPolicy.from_dict(cfg.admission) == AdmissionPolicy(max_calls=40, max_event_lag=0.2)


# ------------------------------------------------------------------------------------------ the gate
class FakeAri:
    def __init__(self) -> None:
        self.globals: dict[str, str] = {SHED_FLAG: "0", SHED_TOTAL: "0"}
        self.sets: list[tuple[str, str]] = []
        self.fail = False

    async def global_var(self, variable: str) -> str:
        if self.fail:
            raise Unavailable("GET", "/asterisk/variable", 0, "timeout")
        return self.globals.get(variable, "")

    async def set_global_var(self, variable: str, value: str) -> None:
        if self.fail:
            raise Unavailable("POST", "/asterisk/variable", 0, "timeout")
        self.sets.append((variable, value))
        self.globals[variable] = value


class FakeMetrics:
    def __init__(self) -> None:
        self.shed: dict[str, int] = {}
        self.states: list[str | None] = []

    def calls_shed(self, stage: str, n: int = 1) -> None:
        self.shed[stage] = self.shed.get(stage, 0) + n

    def admission_state(self, reason: str | None) -> None:
        self.states.append(reason)


def gate_with(**policy):
    a, clock, calls = make(**policy)
    ari, m = FakeAri(), FakeMetrics()
    g = AdmissionGate(a, ari, m, clock=clock, push_interval=0.5, count_interval=5.0)
    return g, a, clock, calls, ari, m


def test_gate_sets_the_dialplan_flag_on_changes_only_and_counts_app_sheds():
    async def main():
        g, a, clock, calls, ari, m = gate_with(max_calls=2)
        await g.on_connect()
        assert ari.sets == [(SHED_FLAG, "0")]
        await g._sync()
        assert ari.sets == [(SHED_FLAG, "0")]          # no change: nothing sent
        calls[0] = 2
        assert g.admit_call() == "capacity"
        assert m.shed == {"app": 1} and m.states == ["capacity"]
        clock.t += 1
        await g._sync()
        assert ari.sets[-1] == (SHED_FLAG, "1")
        calls[0] = 1
        assert g.admit_call() is None
        assert m.states == ["capacity", None]
        await g._sync()                                  # within push_interval of the last push: held
        assert ari.sets[-1] == (SHED_FLAG, "1")
        clock.t += 1
        await g._sync()
        assert ari.sets[-1] == (SHED_FLAG, "0")
    asyncio.run(main())


def test_gate_reads_the_dialplan_count_as_deltas_and_survives_an_asterisk_restart():
    async def main():
        g, a, clock, calls, ari, m = gate_with()
        ari.globals[SHED_TOTAL] = "7"                    # refused before this process started: not ours
        await g.on_connect()
        assert m.shed == {}
        ari.globals[SHED_TOTAL] = "12"
        clock.t += 5
        await g._sync()
        assert m.shed == {"dialplan": 5}
        ari.globals[SHED_TOTAL] = "3"                    # Asterisk restarted: its count began again
        await g.on_connect()
        assert m.shed == {"dialplan": 8}
    asyncio.run(main())


def test_gate_retries_a_push_that_failed():
    async def main():
        g, a, clock, calls, ari, m = gate_with(max_event_lag=0.3)
        await g.on_connect()
        a.lag(1.0)
        ari.fail = True
        clock.t += 1
        await g._sync()                                 # ARI down: nothing raised, nothing recorded as sent
        ari.fail = False
        clock.t += 0.1
        await g._sync()
        assert ari.globals[SHED_FLAG] == "1"
    asyncio.run(main())


def test_gate_probe_measures_a_blocked_event_loop():
    async def main():
        g, a, clock, calls, ari, m = gate_with(max_event_lag=0.3)
        task = asyncio.create_task(g.run())
        await asyncio.sleep(0.15)
        import time
        time.sleep(0.5)                                 # the loop is blocked for 0.5 s
        await asyncio.sleep(0.25)
        task.cancel()
        g.close()
        st = a.evaluate()
        assert not st.open and st.reason == "event_lag" and st.event_lag >= 0.3
    asyncio.run(main())


def test_app_feeds_call_requests_to_admission_but_not_bulk_lists():
    from ivr.app import App
    from tests.support.stack import make_test_config
    app = App(make_test_config(), load_flows=False)
    app.ari.on_latency(2.0, "GET", "/channels")
    app.ari.on_latency(2.0, "GET", "/bridges")
    assert app.admission.admit() is None
    app.ari.on_latency(2.0, "POST", "/channels/c1/answer")
    assert app.admission.admit() == "ari_latency"
