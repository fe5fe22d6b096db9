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


def make(calls: list[int] | None = None, rand: float = 0.5, **policy):
    """The share's rule is tested with every late probe counting (``lag_probes=1``) unless a test says
    otherwise; the confirmation by probes in a row has its own tests."""
    policy.setdefault("lag_probes", 1)
    clock = Clock()
    box = calls if calls is not None else [0]
    return Admission(AdmissionPolicy(**policy), clock, lambda: box[0], random=lambda: rand), clock, box


def test_admits_everything_while_quiet():
    a, clock, _ = make()
    a.lag(0.02)
    a.ari_latency(0.1)
    for _ in range(5):
        clock.t += 0.1
        assert a.admit() is None
    assert a.evaluate().open and a.evaluate().shed == 0


def test_the_refused_share_rises_while_the_event_lag_is_at_its_limit():
    a, clock, _ = make(max_event_lag=0.3, rise_seconds=0.5, decay=10)
    a.lag(0.35)
    assert a.evaluate().shed == 0                          # no time has passed yet
    clock.t += 0.1
    st = a.evaluate()
    assert st.reason == "event_lag" and st.shed == pytest.approx(0.2)
    clock.t += 0.4
    assert a.evaluate().shed == pytest.approx(1.0)
    clock.t += 1.0
    assert a.evaluate().shed == 1.0                        # capped at 1


def test_ari_latency_raises_the_share_too():
    a, clock, _ = make(max_ari_latency=1.0, rise_seconds=0.5, decay=10)
    a.ari_latency(0.9)
    clock.t += 0.1
    assert a.evaluate().shed == 0                          # below the limit: nothing refused
    a.ari_latency(1.2)
    clock.t += 0.25
    st = a.evaluate()
    assert st.reason == "ari_latency" and st.shed == pytest.approx(0.5)


def test_one_stall_and_the_backlog_after_it_refuse_nobody():
    """A start-up stall, a GC pause or a flow reload late one or two probes; that is not saturation."""
    a, clock, _ = make(lag_probes=3, max_event_lag=0.3, rise_seconds=0.5, decay=1.0)
    for lag in (0.01, 0.01, 0.6, 0.35, 0.01, 0.02, 2.0, 0.01, 0.01):
        clock.t += 0.1 + lag
        a.lag(lag)
        st = a.evaluate()
        assert st.open and st.shed == 0 and st.reason is None
        assert a.admit() is None


def test_a_loop_late_at_every_probe_is_saturated():
    a, clock, _ = make(lag_probes=3, max_event_lag=0.3, rise_seconds=0.5, decay=1.0)
    for lag in (0.4, 0.5):
        clock.t += 0.1 + lag
        a.lag(lag)
        assert a.evaluate().open                         # not yet: two late probes
    clock.t += 0.1 + 0.45
    a.lag(0.45)
    clock.t += 0.1
    st = a.evaluate()
    assert st.reason == "event_lag" and 0.3 < st.event_lag <= 0.4 and st.shed > 0   # the smallest of the three
    assert tick(a, clock, 0.5).shed == 1.0               # the peak decays: the share holds
    clock.t += 0.1
    a.lag(0.01)                                          # one probe on time: the lag no longer confirmed
    for _ in range(40):
        clock.t += 0.1
        a.lag(0.01)
        st = a.evaluate()
    assert st.open and st.shed == 0


def test_a_share_refuses_that_share_of_calls():
    a, clock, _ = make(rand=0.3, max_event_lag=0.3, rise_seconds=1.0, decay=10)
    a.lag(1.0)
    clock.t += 0.5                                         # share 0.5
    assert a.admit() == "event_lag"                        # 0.3 < 0.5: refused
    b, clock_b, _ = make(rand=0.7, max_event_lag=0.3, rise_seconds=1.0, decay=10)
    b.lag(1.0)
    clock_b.t += 0.5
    assert b.admit() is None                               # 0.7 >= 0.5: admitted


def tick(a, clock, seconds: float, step: float = 0.1):
    """Evaluate every `step` seconds for `seconds`, as the gate's probe does."""
    for _ in range(round(seconds / step)):
        clock.t += step
        st = a.evaluate()
    return st


def test_the_share_holds_between_the_limits_and_falls_once_calm():
    a, clock, _ = make(max_event_lag=0.4, rise_seconds=0.5, recover_seconds=2.0, resume_ratio=0.5, decay=1.0)
    a.lag(0.5)
    a.evaluate()
    # the peak decays as 0.5 * exp(-t): at the limit (0.4) until 0.22 s, calm (< 0.2) from 0.92 s
    assert tick(a, clock, 0.2).shed == pytest.approx(0.4)  # rising 1 per 0.5 s while at the limit
    assert tick(a, clock, 0.7).shed == pytest.approx(0.4)  # between the limits: holds
    st = tick(a, clock, 1.0)                               # calm from 0.92 s: falls 1 per 2 s
    assert st.shed == pytest.approx(0.4 - 0.5 * 1.0, abs=0.06) or st.shed == 0
    st = tick(a, clock, 1.0)
    assert st.shed == 0 and st.open and st.reason is None and a.admit() is None


def test_a_new_spike_while_recovering_raises_the_share_again():
    a, clock, _ = make(max_event_lag=0.3, rise_seconds=0.5, recover_seconds=2.0, decay=0.1)
    a.lag(1.0)
    a.evaluate()
    st = tick(a, clock, 0.2)
    assert st.shed == pytest.approx(0.15)                  # +0.2 at the limit for 0.1 s, then -0.05 calm
    a.lag(10.0)
    a.evaluate()
    assert tick(a, clock, 0.5).shed > 0.6


def test_capacity_refuses_each_call_beyond_max_calls_and_admits_as_soon_as_a_call_ends():
    a, clock, calls = make(max_calls=3)
    calls[0] = 2
    assert a.admit() is None
    calls[0] = 3
    assert a.admit() == "capacity"
    st = a.evaluate()
    assert st.reason == "capacity" and st.shed == 1.0 and not st.open
    calls[0] = 2
    assert a.admit() is None                               # no recovery wait for capacity alone
    assert a.evaluate().open


def test_disabled_admits_everything():
    a, clock, calls = make(enabled=False, max_calls=1)
    calls[0] = 50
    a.lag(10)
    a.ari_latency(10)
    clock.t += 5
    assert a.admit() is None
    assert a.evaluate().open


def test_bad_samples_are_ignored():
    a, clock, _ = make()
    a.lag(float("nan"))
    a.ari_latency(-5)
    clock.t += 1
    assert a.admit() is None


@pytest.mark.parametrize("bad", [
    {"max_calls": 0}, {"max_calls": "10"}, {"max_calls": True}, {"max_event_lag": 0}, {"max_event_lag": "x"},
    {"max_ari_latency": float("inf")}, {"recover_seconds": 0}, {"rise_seconds": -1}, {"resume_ratio": 0},
    {"resume_ratio": 1.5},
    {"enabled": "yes"}, {"decay": 0}, {"max_wait": 3}, {"lag_probes": 0}, {"lag_probes": 2.5},
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
        self.states: list[tuple[str | None, float]] = []

    def calls_shed(self, stage: str, n: int = 1) -> None:
        self.shed[stage] = self.shed.get(stage, 0) + n

    def admission_state(self, reason: str | None, share: float) -> None:
        if not self.states or self.states[-1] != (reason, share):
            self.states.append((reason, share))


def gate_with(**policy):
    a, clock, calls = make(**policy)
    ari, m = FakeAri(), FakeMetrics()
    g = AdmissionGate(a, ari, m, clock=clock, push_interval=0.5, count_interval=5.0)
    return g, a, clock, calls, ari, m


def test_gate_sets_the_dialplan_share_on_changes_only_and_counts_app_sheds():
    async def main():
        g, a, clock, calls, ari, m = gate_with(max_calls=2, max_event_lag=0.3, rise_seconds=1.0, decay=100)
        await g.on_connect()
        assert ari.sets == [(SHED_FLAG, "0")]
        await g._sync()
        assert ari.sets == [(SHED_FLAG, "0")]          # no change: nothing sent
        calls[0] = 2
        assert g.admit_call() == "capacity"
        assert m.shed == {"app": 1} and m.states[-1] == ("capacity", 1.0)
        clock.t += 1
        await g._sync()
        assert ari.sets[-1] == (SHED_FLAG, "100")      # at capacity the dialplan refuses every new call
        calls[0] = 1
        assert g.admit_call() is None
        assert m.states[-1] == (None, 0.0)
        await g._sync()                                  # within push_interval of the last push: held
        assert ari.sets[-1] == (SHED_FLAG, "100")
        clock.t += 1
        await g._sync()
        assert ari.sets[-1] == (SHED_FLAG, "0")
        a.lag(1.0)                                       # saturated: the share climbs 1 per second
        clock.t += 0.03
        await g._sync()                                  # 3 %: too small a move to send
        assert ari.sets[-1] == (SHED_FLAG, "0")
        clock.t += 0.5
        await g._sync()
        assert ari.sets[-1] == (SHED_FLAG, "53")
        n = len(ari.sets)
        clock.t += 0.02
        await g._sync()                                  # 55 %: moved, but within push_interval
        assert len(ari.sets) == n
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
        g, a, clock, calls, ari, m = gate_with(max_event_lag=0.3, decay=100)
        await g.on_connect()
        a.lag(1.0)
        ari.fail = True
        clock.t += 1
        await g._sync()                                 # ARI down: nothing raised, nothing recorded as sent
        ari.fail = False
        clock.t += 0.1
        await g._sync()
        assert int(ari.globals[SHED_FLAG]) > 0
    asyncio.run(main())


def test_gate_probe_measures_a_blocked_event_loop():
    async def main():
        g, a, clock, calls, ari, m = gate_with(max_event_lag=0.3, lag_probes=3)
        clock.t += 0.5                                  # the share moves with the (fake) clock
        task = asyncio.create_task(g.run())
        await asyncio.sleep(0.15)
        import time
        for _ in range(3):                              # the loop is late at three probes in a row
            time.sleep(0.5)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        task.cancel()
        g.close()
        clock.t += 0.1
        st = a.evaluate()
        assert st.event_lag >= 0.3 and not st.open and st.reason == "event_lag"
    asyncio.run(main())


def test_gate_probe_ignores_one_blocked_moment():
    async def main():
        g, a, clock, calls, ari, m = gate_with(max_event_lag=0.3, lag_probes=3)
        clock.t += 0.5
        task = asyncio.create_task(g.run())
        await asyncio.sleep(0.15)
        import time
        time.sleep(0.5)                                 # the loop is blocked once for 0.5 s
        await asyncio.sleep(0.35)
        task.cancel()
        g.close()
        clock.t += 0.1
        st = a.evaluate()
        assert st.open and st.reason is None
    asyncio.run(main())


def test_app_feeds_call_requests_to_admission_but_not_bulk_lists():
    from ivr.app import App
    from tests.support.stack import make_test_config
    app = App(make_test_config(), load_flows=False)
    app.ari.on_latency(2.0, "GET", "/channels")
    app.ari.on_latency(2.0, "GET", "/bridges")
    assert app.admission.evaluate().ari_latency == 0
    app.ari.on_latency(2.0, "POST", "/channels/c1/answer")
    assert app.admission.evaluate().ari_latency > 1.5


def test_one_slow_request_among_many_is_no_sign_of_saturation_but_a_slow_tenth_is():
    a, clock, _ = make(max_ari_latency=1.0, rise_seconds=0.5, decay=1.0)
    for i in range(300):                                   # 300 requests in 0.3 s, one of them slow
        clock.t += 0.001
        a.ari_latency(2.5 if i == 150 else 0.02)
    assert a.evaluate().ari_latency < 0.1
    clock.t += 0.1
    assert a.evaluate().shed == 0
    for i in range(100):                                   # now 40 of the next 100 take 1.2 s
        clock.t += 0.001
        a.ari_latency(1.2 if i % 5 < 2 else 0.02)
    st = a.evaluate()
    assert st.ari_latency == pytest.approx(1.2)
    clock.t += 0.1
    assert a.evaluate().shed > 0 and a.evaluate().reason == "ari_latency"
    clock.t += 1.5                                         # the window (decay = 1 s) forgets them
    assert a.evaluate().ari_latency == 0
