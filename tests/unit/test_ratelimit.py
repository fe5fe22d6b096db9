from ivr.web.ratelimit import RateLimit


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def test_at_most_limit_events_per_window_per_key():
    c = Clock()
    r = RateLimit(2, 60, c)
    assert r.hit("a") == 0 and r.hit("a") == 0
    assert r.hit("a") == 60 and r.hit("b") == 0          # refused: nothing counted; other keys unaffected
    c.t += 30
    assert r.hit("a") == 30
    c.t += 30
    assert r.hit("a") == 0 and r.hit("a") == 0 and r.retry_after("a") == 60


def test_memory_is_bounded():
    c = Clock()
    r = RateLimit(1, 60, c, max_keys=3)
    for k in "abcde":
        r.hit(k)
    assert len(r._events) == 3 and r.hit("a") == 0      # the oldest forgotten: let through, never blocked
    c.t += 61
    assert r.retry_after("e") == 0 and "e" not in r._events
