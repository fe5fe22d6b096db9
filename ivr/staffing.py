"""Erlang C staffing maths (pure: no I/O, no clock, no state).

The M/M/N queue behind Erlang C: calls arrive at random (Poisson) at ``rate`` calls per second, each
keeps an agent busy for an exponentially distributed handle time of mean ``aht`` seconds (talk +
wrap-up), callers wait as long as it takes (no abandons), N identical agents. The offered traffic is
``A = rate x aht`` erlangs.

* ``erlang_b(A, N)``: blocking probability, by the recursion ``B(0) = 1``,
  ``B(n) = A B(n-1) / (n + A B(n-1))``. Every step stays in [0, 1], so it is stable for any traffic
  (no factorials, no powers that overflow at A = 1000).
* ``erlang_c(A, N)``: probability that a call has to wait,
  ``C = N B / (N - A (1 - B))`` when ``N > A``; with ``N <= A`` the queue grows without bound, every
  call waits: ``C = 1``. Zero traffic: nobody waits, ``C = 0``.
* ``service_level(rate, aht, N, T)``: fraction answered within ``T`` seconds,
  ``1 - C exp(-(N - A) T / aht)``; 0 when unstable, 1 with zero traffic.
* ``asa(rate, aht, N)``: mean wait ``C aht / (N - A)`` (``inf`` when unstable).
* ``agents_needed(rate, aht, target, T)``: the smallest N with ``service_level >= target``
  (0 with zero traffic). Erlang C ignores abandons, so it slightly over-staffs: the usual, safe side.

Arguments are validated (``ValueError`` for negatives, NaN, a target outside [0, 1]...); these are
called at every scrape with live figures, so the failure modes are explicit rather than NaN.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_MAX_AGENTS", "Unreachable", "agents_needed", "asa", "erlang_b", "erlang_c", "occupancy",
           "service_level", "traffic"]

#: Upper bound of the search in ``agents_needed`` (each candidate costs O(1): the recursion is shared).
DEFAULT_MAX_AGENTS = 10_000


class Unreachable(ValueError):
    """The service-level target cannot be met with at most ``max_agents`` agents (or never: 100 %)."""


def _check_number(name: str, v: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)


def _check_agents(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"agents must be an integer >= 0, got {n!r}")
    return n


def traffic(rate_per_s: float, aht_s: float) -> float:
    """Offered traffic in erlangs: arrival rate (calls/s) x mean handle time (s)."""
    return _check_number("rate", rate_per_s) * _check_number("aht", aht_s)


def erlang_b(traffic_erlangs: float, agents: int) -> float:
    """Erlang B blocking probability for ``agents`` servers and no queue (iterative, stable)."""
    a = _check_number("traffic", traffic_erlangs)
    n = _check_agents(agents)
    b = 1.0
    for k in range(1, n + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def _c_from_b(a: float, n: int, b: float) -> float:
    if a == 0.0:
        return 0.0
    if n <= a:
        return 1.0
    c = n * b / (n - a * (1.0 - b))
    return min(1.0, max(0.0, c))


def erlang_c(traffic_erlangs: float, agents: int) -> float:
    """Probability that an arriving call waits (Erlang C). 1.0 when ``agents <= traffic`` (unstable)."""
    a = _check_number("traffic", traffic_erlangs)
    n = _check_agents(agents)
    return _c_from_b(a, n, erlang_b(a, n))


def _sl(a: float, n: int, c: float, aht: float, threshold: float) -> float:
    if a == 0.0:
        return 1.0
    if n <= a:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(n - a) * threshold / aht))


def service_level(rate_per_s: float, aht_s: float, agents: int, threshold_s: float) -> float:
    """Fraction of calls answered within ``threshold_s`` seconds with ``agents`` agents."""
    a = traffic(rate_per_s, aht_s)
    t = _check_number("threshold", threshold_s)
    n = _check_agents(agents)
    return _sl(a, n, erlang_c(a, n), aht_s, t)


def asa(rate_per_s: float, aht_s: float, agents: int) -> float:
    """Average speed of answer (mean wait of all calls, seconds); ``inf`` when unstable, 0 without traffic."""
    a = traffic(rate_per_s, aht_s)
    n = _check_agents(agents)
    if a == 0.0:
        return 0.0
    if n <= a:
        return math.inf
    return erlang_c(a, n) * aht_s / (n - a)


def occupancy(rate_per_s: float, aht_s: float, agents: int) -> float:
    """Fraction of the agents' time spent handling calls (capped at 1 when unstable)."""
    a = traffic(rate_per_s, aht_s)
    n = _check_agents(agents)
    if a == 0.0:
        return 0.0
    return 1.0 if n <= a else a / n


def agents_needed(rate_per_s: float, aht_s: float, target_sl: float, threshold_s: float,
                  max_agents: int = DEFAULT_MAX_AGENTS) -> int:
    """Smallest number of agents giving ``service_level >= target_sl`` (a fraction, e.g. 0.8 for 80 %).

    Zero traffic needs 0 agents. A target of 1.0 (100 %) is never met with traffic (Erlang C waits are
    unbounded) and raises ``Unreachable``, as does a target not met with ``max_agents`` agents.
    """
    a = traffic(rate_per_s, aht_s)
    t = _check_number("threshold", threshold_s)
    target = _check_number("target_sl", target_sl)
    if target > 1.0:
        raise ValueError(f"target_sl is a fraction in [0, 1], got {target_sl!r}")
    _check_agents(max_agents)
    if a == 0.0:
        return 0
    if target >= 1.0:
        raise Unreachable("a 100 % service level needs infinitely many agents under Erlang C")
    # One pass of the Erlang B recursion: B(n) from B(n-1), so checking each candidate costs O(1).
    b = 1.0
    for n in range(1, max_agents + 1):
        ab = a * b
        b = ab / (n + ab)
        if n <= a * (1 + 1e-12):
            continue   # n must exceed the load; a = rate x aht may round just below a whole n (15 -> 14.999...)
        if _sl(a, n, _c_from_b(a, n, b), aht_s, t) >= target:
            return n
    raise Unreachable(f"{a:.1f} erlangs: service level {target:.0%} in {t:g}s not met with {max_agents} "
                      "agents")
