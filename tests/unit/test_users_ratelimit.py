"""The login limits of ivr/web/auth.py on a fake clock: per user name (failed attempts) and per address."""

from __future__ import annotations

from ivr.users import Accounts, AuthPolicy, SqliteUserStore
from ivr.web.auth import Auth


def test_the_login_limits_follow_the_policy_and_open_again_after_the_window() -> None:
    now = [100.0]
    acc = Accounts(SqliteUserStore(), lambda: 0.0, AuthPolicy(login_per_user=2, login_per_address=3, login_window=60,
                                                              scrypt_n=1024))
    auth = Auth(acc, "", None, clock=lambda: now[0])
    assert auth.per_user.hit("ann") == 0 and auth.per_user.hit("ann") == 0
    assert auth.per_user.retry_after("ann") == 60 and auth.per_user.retry_after("bob") == 0
    for _ in range(3):
        assert auth.per_address.hit("10.0.0.1") == 0
    assert auth.per_address.hit("10.0.0.1") == 60
    now[0] += 60.5
    assert auth.per_user.retry_after("ann") == 0 and auth.per_address.hit("10.0.0.1") == 0
