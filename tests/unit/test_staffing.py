"""Erlang C: against independent computations (exact factorial formula, log-space for large traffic),
published examples, edge cases, and monotonicity properties."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.staffing import (
    Unreachable,
    agents_needed,
    asa,
    erlang_b,
    erlang_c,
    occupancy,
    service_level,
    traffic,
)


# ------------------------------------------------------------------ independent reference formulas
def erlang_c_factorial(a: Fraction, n: int) -> Fraction:
    """Textbook Erlang C, exact rational arithmetic with factorials (small cases only)."""
    top = a ** n / math.factorial(n) * Fraction(n) / (n - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(n)) + top)


def erlang_b_factorial(a: Fraction, n: int) -> Fraction:
    return (a ** n / math.factorial(n)) / sum(a ** k / math.factorial(k) for k in range(n + 1))


def erlang_c_logspace(a: float, n: int) -> float:
    """Same formula with log-gamma and log-sum-exp (an independent route that survives large traffic)."""
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(n)]
    log_top = n * math.log(a) - math.lgamma(n + 1) + math.log(n / (n - a))
    m = max(max(logs), log_top)
    s = sum(math.exp(x - m) for x in logs) + math.exp(log_top - m)
    return math.exp(log_top - m) / s


# ------------------------------------------------------------------------------- hand computations
def test_hand_computed_small_case():
    # A = 2 erlangs, N = 3 agents, by hand:
    #   sum_{k<3} A^k/k! = 1 + 2 + 2 = 5 ;  A^3/3! * N/(N-A) = 8/6 * 3 = 4  ->  C = 4 / 9
    assert erlang_c(2.0, 3) == pytest.approx(4 / 9, rel=1e-12)
    # Erlang B(2, 3) = (8/6) / (1 + 2 + 2 + 8/6) = 4/19
    assert erlang_b(2.0, 3) == pytest.approx(4 / 19, rel=1e-12)
    # ASA = C * AHT / (N - A) with AHT 60 s (rate 2/60 per s): 4/9 * 60 / 1 = 26.67 s
    assert asa(2 / 60, 60, 3) == pytest.approx(4 / 9 * 60, rel=1e-12)
    # SL(20 s) = 1 - C e^{-(N-A) T / AHT} = 1 - 4/9 e^{-1/3}
    assert service_level(2 / 60, 60, 3, 20) == pytest.approx(1 - 4 / 9 * math.exp(-1 / 3), rel=1e-12)


@pytest.mark.parametrize("a", [Fraction(1, 2), Fraction(1), Fraction(5, 2), Fraction(5), Fraction(99, 10),
                               Fraction(10),
                               Fraction(17)])
def test_matches_exact_factorial_formula(a):
    for n in range(math.floor(a) + 1, math.floor(a) + 12):
        assert erlang_c(float(a), n) == pytest.approx(float(erlang_c_factorial(a, n)), rel=1e-10, abs=1e-15)
        assert erlang_b(float(a), n) == pytest.approx(float(erlang_b_factorial(a, n)), rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("a,n", [(200.0, 215), (1000.0, 1040), (4000.0, 4100)])
def test_large_traffic_is_stable_and_matches_logspace(a, n):
    c = erlang_c(a, n)
    assert 0.0 < c < 1.0
    assert c == pytest.approx(erlang_c_logspace(a, n), rel=1e-8)


# -------------------------------------------------------------------------------- published examples
def test_published_example_call_centre_helper():
    # The widely used worked example (e.g. Call Centre Helper, "Erlang C formula made simple"): 100 calls
    # in 30 min, AHT 3 min, target 80 % answered in 20 s -> 10 erlangs, 14 agents (13 give 79.6 %,
    # 14 give 88.8 %).
    rate, aht = 100 / 1800, 180
    assert traffic(rate, aht) == pytest.approx(10.0)
    assert erlang_c(10.0, 14) == pytest.approx(0.1741, abs=1e-4)
    assert service_level(rate, aht, 13, 20) == pytest.approx(0.7956, abs=1e-4)
    assert service_level(rate, aht, 14, 20) == pytest.approx(0.8884, abs=1e-4)
    assert asa(rate, aht, 14) == pytest.approx(0.1741 * 180 / 4, abs=0.01)   # 7.8 s
    assert agents_needed(rate, aht, 0.8, 20) == 14
    assert occupancy(rate, aht, 14) == pytest.approx(10 / 14)


def test_published_example_al911_call_calc():
    # al911.org, Call Calc application note: 2 call takers, 60 s calls, 30 calls/hour -> "fewer than 8 percent
    # of callers will wait more than 10 seconds"; with 80 s per call "the QOS falls to 14 percent".
    assert 1 - service_level(30 / 3600, 60, 2, 10) == pytest.approx(0.0779, abs=1e-4)
    assert 1 - service_level(30 / 3600, 60, 2, 10) < 0.08
    assert 1 - service_level(30 / 3600, 80, 2, 10) == pytest.approx(0.1411, abs=1e-4)


# ---------------------------------------------------------------------------------------- edge cases
def test_zero_traffic():
    assert agents_needed(0.0, 180, 0.8, 20) == 0
    assert agents_needed(0.5, 0.0, 0.8, 20) == 0
    assert erlang_c(0.0, 0) == 0.0
    assert erlang_c(0.0, 3) == 0.0
    assert service_level(0.0, 180, 0, 20) == 1.0
    assert asa(0.0, 180, 0) == 0.0
    assert occupancy(0.0, 180, 5) == 0.0


def test_unstable_when_agents_do_not_exceed_traffic():
    assert erlang_c(5.0, 5) == 1.0
    assert erlang_c(5.0, 3) == 1.0
    assert erlang_c(5.0, 0) == 1.0
    assert service_level(5 / 100, 100, 5, 20) == 0.0
    assert asa(5 / 100, 100, 5) == math.inf
    assert occupancy(5 / 100, 100, 4) == 1.0
    # fractional traffic just below N is stable, just above is not
    assert erlang_c(4.999, 5) < 1.0
    assert erlang_c(5.001, 5) == 1.0


def test_agents_needed_is_always_stable_even_with_zero_target():
    # target 0 % still needs a queue that does not grow forever: floor(A) + 1 agents
    assert agents_needed(10 / 180, 180, 0.0, 20) == 11
    assert agents_needed(10.5 / 180, 180, 0.0, 20) == 11


def test_unreachable_targets():
    with pytest.raises(Unreachable):
        agents_needed(1 / 10, 180, 1.0, 20)
    with pytest.raises(Unreachable):
        agents_needed(100.0, 180, 0.8, 20, max_agents=100)
    assert isinstance(Unreachable("x"), ValueError)


@pytest.mark.parametrize("call", [
    lambda: erlang_c(-1.0, 3), lambda: erlang_c(float("nan"), 3), lambda: erlang_c(1.0, -1),
    lambda: erlang_c(1.0, 2.5), lambda: erlang_c(float("inf"), 3), lambda: erlang_b(True, 2),
    lambda: service_level(0.1, 10, 3, -1), lambda: agents_needed(0.1, 10, 1.5, 20),
    lambda: agents_needed(0.1, 10, -0.1, 20), lambda: asa(0.1, -10, 3),
])
def test_invalid_arguments(call):
    with pytest.raises(ValueError):
        call()


def test_agents_needed_large_traffic_is_fast_and_plausible():
    # 5 calls/s, AHT 10 min = 3000 erlangs: square-root staffing says about A + c sqrt(A) agents
    n = agents_needed(5.0, 600, 0.8, 20)
    assert 3000 < n < 3000 + 3 * math.sqrt(3000)
    assert service_level(5.0, 600, n, 20) >= 0.8 > service_level(5.0, 600, n - 1, 20)


# ------------------------------------------------------------------------------------------ properties
traffic_st = st.floats(min_value=0.01, max_value=150.0, allow_nan=False)
aht_st = st.floats(min_value=5.0, max_value=1200.0, allow_nan=False)
threshold_st = st.floats(min_value=0.0, max_value=300.0, allow_nan=False)
target_st = st.floats(min_value=0.0, max_value=0.99, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(a=traffic_st, extra=st.integers(min_value=1, max_value=40))
def test_prob_wait_decreases_with_agents_and_bounds(a, extra):
    n = math.floor(a) + extra
    c1, c2 = erlang_c(a, n), erlang_c(a, n + 1)
    assert 0.0 <= c2 <= c1 <= 1.0
    assert erlang_b(a, n) <= c1          # waiting is at least as likely as blocking without a queue


@settings(max_examples=60, deadline=None)
@given(a=traffic_st, da=st.floats(min_value=0.0, max_value=5.0), extra=st.integers(min_value=1, max_value=30))
def test_prob_wait_increases_with_traffic(a, da, extra):
    n = math.floor(a + da) + extra
    assert erlang_c(a, n) <= erlang_c(a + da, n) + 1e-12


@settings(max_examples=60, deadline=None)
@given(a=traffic_st, aht=aht_st, t=threshold_st, dt=st.floats(min_value=0.0, max_value=60.0),
       extra=st.integers(min_value=0, max_value=30))
def test_service_level_grows_with_agents_and_threshold(a, aht, t, dt, extra):
    rate = a / aht
    n = math.floor(a) + extra
    sl = service_level(rate, aht, n, t)
    assert 0.0 <= sl <= 1.0
    assert service_level(rate, aht, n + 1, t) >= sl - 1e-12
    assert service_level(rate, aht, n, t + dt) >= sl - 1e-12


@settings(max_examples=60, deadline=None)
@given(a=traffic_st, aht=aht_st, t=threshold_st, target=target_st,
       more=st.floats(min_value=1.0, max_value=2.0), tighter=st.floats(min_value=0.0, max_value=0.5))
def test_agents_needed_minimal_and_monotone(a, aht, t, target, more, tighter):
    rate = a / aht
    n = agents_needed(rate, aht, target, t)
    assert n > a
    assert service_level(rate, aht, n, t) >= target
    # agents_needed treats a load within 1e-12 of a whole number as that number (rate x aht rounds: 15 ->
    # 14.999...), so n - 1 is a candidate only beyond that tolerance
    if n - 1 > a * (1 + 1e-12):
        assert service_level(rate, aht, n - 1, t) < target
    # more calls, longer calls, a higher target or a shorter threshold never need fewer agents
    assert agents_needed(rate * more, aht, target, t) >= n
    assert agents_needed(rate, aht * more, target, t) >= n
    assert agents_needed(rate, aht, min(0.99, target + tighter), t) >= n
    assert agents_needed(rate, aht, target, t * (1 - tighter)) >= n


def test_window_memory_is_bounded_by_its_length_not_the_call_rate():
    from ivr.metrics import Staffing

    class Clock:
        t = 1000.0

        def __call__(self) -> float:
            return self.t

    clock = Clock()
    st = Staffing(window_seconds=900, clock=clock)
    for _ in range(20 * 1800):            # 20 calls/s for 30 minutes
        clock.t += 0.05
        st.arrival("q")
        st.talk("q", 3.0)
    assert len(st._arrivals["q"].samples) <= 901 and len(st._talk["q"].samples) <= 901
    assert st.arrival_rate("q") == pytest.approx(20.0, rel=0.01)
    assert st.handle_time("q") == pytest.approx(3.0)


def test_agents_needed_exceeds_a_whole_load_that_rounds_below_itself():
    # 15 erlangs as rate x aht = (15 / 58.5) x 58.5 = 14.999...: 15 agents would be unstable under Erlang C
    assert agents_needed(15.0 / 58.5, 58.5, 0.0, 0.0) == 16
