"""ivr/users: password hashing, sessions, API tokens, the account rules (pure; a fake wall clock)."""

from __future__ import annotations

import pytest

from ivr.users import Accounts, AuthPolicy, LoginRefused, SqliteUserStore, UserError
from ivr.users import model as m

CHEAP = 2 ** 10


class Wall:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def acc() -> Accounts:
    return Accounts(SqliteUserStore(), Wall(), AuthPolicy(scrypt_n=CHEAP, session_hours=1))


def test_a_password_hash_keeps_its_parameters_and_a_fresh_salt() -> None:
    h1, h2 = m.hash_password("correct horse", n=CHEAP), m.hash_password("correct horse", n=CHEAP)
    assert h1 != h2 and h1.startswith(f"scrypt${CHEAP}$8$1$") and "correct" not in h1
    assert m.verify_password("correct horse", h1) and m.verify_password("correct horse", h2)
    assert not m.verify_password("correct horsf", h1)


@pytest.mark.parametrize("bad", ["", "scrypt$x", "md5$1$2$3$4$5", "scrypt$1024$8$1$!!$AAAA", m.DUMMY_HASH])
def test_a_malformed_or_dummy_hash_never_matches_and_never_raises(bad: str) -> None:
    assert not m.verify_password("anything", bad)


def test_secrets_are_stored_as_hashes_and_csrf_derives_from_the_session() -> None:
    raw = m.new_secret()
    assert len(raw) >= 43 and m.secret_hash(raw) != raw and len(m.secret_hash(raw)) == 64
    assert m.csrf_token(raw) == m.csrf_token(raw) != m.csrf_token(m.new_secret())
    tid, token = m.new_token()
    assert token.startswith(f"ivr_{tid}_")


def test_login_a_session_and_its_expiry(acc: Accounts) -> None:
    acc.create_user("alice", "agent", "a long password", agent_id="agent1")
    with pytest.raises(LoginRefused):
        acc.authenticate("alice", "wrong password!")
    with pytest.raises(LoginRefused):
        acc.authenticate("nobody", "a long password")
    u = acc.authenticate("alice", "a long password")
    raw, s = acc.start_session(u)
    assert acc.store.session(raw) is None and acc.store.session(s.id_hash) is not None   # only the hash stored
    assert acc.session_user(raw)[0].username == "alice"
    acc.wall.t += 3600 + 1
    assert acc.session_user(raw) is None and acc.store.session(s.id_hash) is None


def test_logout_ends_the_session(acc: Accounts) -> None:
    u = acc.create_user("bob", "admin", "a long password")
    raw, _ = acc.start_session(u)
    acc.end_session(raw)
    assert acc.session_user(raw) is None


def test_a_disabled_user_cannot_log_in_and_loses_its_sessions_and_tokens(acc: Accounts) -> None:
    acc.create_user("root", "admin", "a long password")
    u = acc.create_user("sup", "supervisor", "a long password", queues=["billing"])
    raw, _ = acc.start_session(u)
    _, token = acc.create_token("sup", "ci")
    acc.update_user("sup", {"disabled": True})
    assert acc.session_user(raw) is None and acc.token_user(token) is None
    with pytest.raises(LoginRefused):
        acc.authenticate("sup", "a long password")


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(acc: Accounts) -> None:
    acc.create_user("carol", "supervisor", "a long password", queues=["sales"])
    t, raw = acc.create_token("carol", "reporting")
    assert raw not in repr(acc.store.tokens("carol")) and "token" not in t.as_dict()
    u, used = acc.token_user(raw)
    assert u.username == "carol" and used.id == t.id
    assert acc.store.tokens("carol")[0].last_used == acc.wall.t
    assert acc.token_user(raw + "x") is None and acc.token_user("not-a-token") is None
    acc.revoke_token("carol", t.id)
    assert acc.token_user(raw) is None
    with pytest.raises(UserError) as e:
        acc.revoke_token("carol", t.id)
    assert e.value.error_id == "token-not-found"


def test_the_last_admin_cannot_be_removed_demoted_or_disabled(acc: Accounts) -> None:
    acc.create_user("root", "admin", "a long password")
    for op in (lambda: acc.delete_user("root"), lambda: acc.update_user("root", {"disabled": True}),
               lambda: acc.update_user("root", {"role": "supervisor"})):
        with pytest.raises(UserError) as e:
            op()
        assert e.value.error_id == "last-admin"
    acc.create_user("root2", "admin", "a long password")
    acc.delete_user("root")
    assert [u.username for u in acc.store.users()] == ["root2"] and acc.has_admin()


@pytest.mark.parametrize("fields, error_id", [
    ({"username": "Bad Name", "role": "admin"}, "invalid-user"),
    ({"username": "x" * 65, "role": "admin"}, "invalid-user"),
    ({"username": "ok", "role": "root"}, "invalid-user"),
    ({"username": "ok", "role": "agent"}, "invalid-user"),                          # no agent_id
    ({"username": "ok", "role": "admin", "agent_id": "agent1"}, "invalid-user"),
    ({"username": "ok", "role": "supervisor", "queues": "billing"}, "invalid-user"),
    ({"username": "ok", "role": "admin", "password": "short"}, "weak-password"),
    ({"username": "ok", "role": "admin", "password": 12345678901}, "weak-password"),
    ({"username": "ok", "role": "admin", "password": "x" * 257}, "weak-password"),
])
def test_bad_user_fields_are_refused_and_nothing_is_stored(acc: Accounts, fields: dict, error_id: str) -> None:
    with pytest.raises(UserError) as e:
        acc.create_user(fields["username"], fields["role"], fields.get("password", "a long password"),
                        fields.get("agent_id"), fields.get("queues"))
    assert e.value.error_id == error_id and acc.store.users() == []


def test_a_taken_name_is_refused(acc: Accounts) -> None:
    acc.create_user("dup", "admin", "a long password")
    with pytest.raises(UserError) as e:
        acc.create_user("dup", "admin", "another long one")
    assert e.value.error_id == "user-exists"


def test_a_new_password_ends_the_sessions(acc: Accounts) -> None:
    u = acc.create_user("dave", "admin", "a long password")
    raw, _ = acc.start_session(u)
    acc.update_user("dave", {"password": "a new long password"})
    assert acc.session_user(raw) is None
    assert acc.authenticate("dave", "a new long password").username == "dave"


def test_seeding_creates_missing_users_once_with_env_or_generated_passwords(acc: Accounts) -> None:
    entries = [{"username": "admin", "role": "admin"}, {"username": "agent-one", "role": "agent", "agent_id": "agent1"}]
    shown = acc.seed(entries, {"IVR_USER_ADMIN_PASSWORD": "from the environment"})
    assert [n for n, _ in shown] == ["agent-one"]
    assert acc.authenticate("admin", "from the environment").role == "admin"
    assert acc.authenticate("agent-one", shown[0][1]).agent_id == "agent1"
    assert acc.seed(entries, {}) == []               # the store wins afterwards


def test_auth_policy_refuses_unknown_keys_and_bad_values() -> None:
    assert AuthPolicy.from_dict({"session_hours": 8}).session_hours == 8
    for bad in ({"nope": 1}, {"session_hours": 0}, {"login_per_user": 0}, {"scrypt_n": 1000}):
        with pytest.raises((ValueError, TypeError)):
            AuthPolicy.from_dict(bad)


def test_a_user_has_at_most_twenty_live_tokens(acc: Accounts) -> None:
    acc.create_user("bot", "admin", "a long password")
    made = [acc.create_token("bot", f"t{i}")[0] for i in range(20)]
    with pytest.raises(UserError) as e:
        acc.create_token("bot", "one more")
    assert e.value.error_id == "too-many-tokens"
    acc.revoke_token("bot", made[0].id)
    assert acc.create_token("bot", "one more")[0].name == "one more"
