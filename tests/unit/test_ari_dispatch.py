import asyncio
import random

from ivr.ari import Dispatcher, backoff_delay
from ivr.ari.models import parse_event


def _ev(ch: str, n: int):
    return parse_event({"type": "ChannelDtmfReceived", "digit": str(n % 10), "channel": {"id": ch},
                        "seq": n})


async def test_events_of_one_channel_run_in_order_and_channels_run_concurrently():
    seen: dict[str, list[int]] = {"a": [], "b": []}
    b_started = asyncio.Event()

    async def handler(ev):
        ch = ev.channel.id
        if ch == "a" and ev.raw["seq"] == 0:
            # a slow first event on channel a must not hold up channel b
            await asyncio.wait_for(b_started.wait(), 2)
        if ch == "b":
            b_started.set()
        await asyncio.sleep(random.random() / 1000)
        seen[ch].append(ev.raw["seq"])

    d = Dispatcher(handler)
    for n in range(20):
        d.submit(_ev("a", n))
        d.submit(_ev("b", n))
    await d.join()
    assert seen["a"] == list(range(20)) and seen["b"] == list(range(20))
    assert d.active_keys == 0


async def test_a_failing_handler_is_isolated_and_later_events_still_run():
    seen = []

    async def handler(ev):
        if ev.channel.id == "bad":
            raise RuntimeError("boom")
        seen.append((ev.channel.id, ev.raw["seq"]))

    d = Dispatcher(handler)
    d.submit(_ev("bad", 0))
    d.submit(_ev("good", 1))
    d.submit(_ev("bad", 2))
    d.submit(_ev("good", 3))
    await d.join()
    assert seen == [("good", 1), ("good", 3)]
    assert d.handler_errors == 2


async def test_lag_is_reported_per_event():
    lags = []

    async def handler(ev):
        await asyncio.sleep(0.01)

    d = Dispatcher(handler, on_lag=lags.append)
    for n in range(3):
        d.submit(_ev("x", n))
    await d.join()
    assert len(lags) == 3 and lags[2] >= 0.015   # the third waited for the first two


def test_backoff_grows_with_attempts_caps_and_jitters():
    rng = random.Random(1)
    first = [backoff_delay(0, 0.2, 5.0, rng) for _ in range(200)]
    late = [backoff_delay(10, 0.2, 5.0, rng) for _ in range(200)]
    assert max(first) <= 0.2 and min(first) >= 0.1
    assert max(late) <= 5.0 and min(late) >= 0.1
    assert len(set(round(x, 6) for x in late)) > 100   # jittered, not a fixed delay
    assert sum(late) / len(late) > 2 * sum(first) / len(first)
