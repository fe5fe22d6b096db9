"""The account operations: check a password, open/close a login session, resolve a session or an API token
to its user, create/change/delete users and tokens, seed the first users from the config. The clock is
injected (wall time, epoch seconds); rate limits and HTTP are the web layer's (ivr/web/auth.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import model as m
from .model import ApiToken, Session, User, UserError
from .store import UserStore

MAX_TOKENS = 20                          # live API tokens per user


class LoginRefused(Exception):
    """Wrong user name or password, or a disabled user (the caller never learns which)."""


@dataclass(frozen=True)
class AuthPolicy:
    """The ``auth:`` config section (docs/api.md, Authentication)."""

    session_hours: float = 12.0          # a login lasts a shift; then the user logs in again
    login_per_user: int = 5              # login attempts per user name ...
    login_per_address: int = 30          # ... and per client address ...
    login_window: float = 300.0          # ... per this many seconds
    scrypt_n: int = m.SCRYPT_N           # scrypt's cost (a power of two); lower only for tests

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AuthPolicy:
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"auth: unknown key(s) {', '.join(unknown)}")
        p = cls(**d)
        ok = (isinstance(p.session_hours, (int, float)) and 0 < p.session_hours <= 24 * 30
              and all(isinstance(v, int) and v >= 1 for v in (p.login_per_user, p.login_per_address))
              and isinstance(p.login_window, (int, float)) and p.login_window > 0
              and isinstance(p.scrypt_n, int) and p.scrypt_n >= 2 ** 10 and p.scrypt_n & (p.scrypt_n - 1) == 0)
        if not ok:
            raise ValueError("auth: session_hours in (0, 720], login_per_* >= 1, login_window > 0, "
                             "scrypt_n a power of two >= 1024")
        return p


class Accounts:
    def __init__(self, store: UserStore, wall: Callable[[], float], policy: AuthPolicy = AuthPolicy()) -> None:
        self.store, self.wall, self.policy = store, wall, policy

    # ------------------------------------------------------------------------------- passwords
    def _hash(self, password: str) -> str:
        return m.hash_password(password, n=self.policy.scrypt_n)

    def authenticate(self, username: str, password: str) -> User:
        """The user, when the password is right and the user is enabled; else `LoginRefused`. An unknown
        name costs one scrypt like a known one (no timing hint of who exists)."""
        u = self.store.user(username) if isinstance(username, str) else None
        ok = m.verify_password(password, u.password_hash if u is not None else m.DUMMY_HASH)
        if u is None or not ok or u.disabled:
            raise LoginRefused()
        return u

    # -------------------------------------------------------------------------------- sessions
    def start_session(self, user: User) -> tuple[str, Session]:
        """(the session id for the cookie, what is stored: its hash)."""
        raw = m.new_secret()
        now = self.wall()
        s = Session(m.secret_hash(raw), user.username, now, now + self.policy.session_hours * 3600)
        self.store.purge_sessions(now)
        self.store.add_session(s)
        return raw, s

    def session_user(self, raw: str) -> tuple[User, Session] | None:
        s = self.store.session(m.secret_hash(raw))
        if s is None:
            return None
        if s.expires_at <= self.wall():
            self.store.delete_session(s.id_hash)
            return None
        u = self.store.user(s.username)
        return (u, s) if u is not None and not u.disabled else None

    def end_session(self, raw: str) -> None:
        self.store.delete_session(m.secret_hash(raw))

    # ---------------------------------------------------------------------------------- tokens
    def token_user(self, raw: str) -> tuple[User, ApiToken] | None:
        if not raw.startswith(m.TOKEN_PREFIX) or len(raw) > 200:
            return None
        t = self.store.token_by_hash(m.secret_hash(raw))
        if t is None or t.revoked_at is not None:
            return None
        u = self.store.user(t.username)
        if u is None or u.disabled:
            return None
        self.store.token_used(t.id, self.wall())
        return u, t

    def create_token(self, username: str, name: Any) -> tuple[ApiToken, str]:
        name = m.check_token_name(name)
        self._existing(username)
        if sum(1 for t in self.store.tokens(username) if t.revoked_at is None) >= MAX_TOKENS:
            raise UserError("too-many-tokens", f"at most {MAX_TOKENS} live tokens per user: revoke one first")
        tid, raw = m.new_token()
        t = ApiToken(tid, username, name, m.secret_hash(raw), self.wall())
        self.store.add_token(t)
        return t, raw

    def revoke_token(self, username: str, token_id: str) -> None:
        if not self.store.revoke_token(username, token_id, self.wall()):
            raise UserError("token-not-found", "no such live token of this user")

    # ----------------------------------------------------------------------------------- users
    def has_admin(self) -> bool:
        return any(u.role == "admin" and not u.disabled for u in self.store.users())

    def _existing(self, username: str) -> User:
        u = self.store.user(username) if isinstance(username, str) else None
        if u is None:
            raise UserError("user-not-found", "no such user")
        return u

    def create_user(self, username: Any, role: Any, password: Any, agent_id: Any = None,
                    queues: Any = None) -> User:
        name, r = m.check_username(username), m.check_role(role)
        aid, qs = m.check_fields(r, agent_id, queues)
        pw = m.check_password_policy(password)
        now = self.wall()
        u = User(name, r, self._hash(pw), aid, qs, False, now, now)
        if not self.store.add_user(u):
            raise UserError("user-exists", "a user with this name exists")
        return u

    def update_user(self, username: str, changes: Mapping[str, Any]) -> tuple[User, User]:
        """Change role, agent_id, queues, disabled and/or password; (before, after). The last enabled admin
        cannot be demoted or disabled. A new password, a disabled user or a new role ends the user's
        sessions."""
        before = self._existing(username)
        role = m.check_role(changes.get("role", before.role))
        aid, qs = m.check_fields(role, changes.get("agent_id", before.agent_id if role == before.role else None),
                                 changes.get("queues", sorted(before.queues) if role == before.role else None))
        disabled = changes.get("disabled", before.disabled)
        if not isinstance(disabled, bool):
            raise UserError("invalid-user", "disabled must be true or false")
        pw_hash = before.password_hash
        if "password" in changes:
            pw_hash = self._hash(m.check_password_policy(changes["password"]))
        after = replace(before, role=role, agent_id=aid, queues=qs, disabled=disabled, password_hash=pw_hash,
                        updated_at=self.wall())
        if before.role == "admin" and not before.disabled and (role != "admin" or disabled):
            self._keep_an_admin(username)
        self.store.save_user(after)
        if pw_hash != before.password_hash or disabled or role != before.role:
            self.store.delete_sessions(username)
        return before, after

    def delete_user(self, username: str) -> User:
        u = self._existing(username)
        if u.role == "admin" and not u.disabled:
            self._keep_an_admin(username)
        self.store.delete_user(username)
        return u

    def _keep_an_admin(self, leaving: str) -> None:
        if not any(u.role == "admin" and not u.disabled and u.username != leaving for u in self.store.users()):
            raise UserError("last-admin", "this is the last enabled admin: make another admin first")

    # --------------------------------------------------------------------------------- seeding
    def seed(self, entries: Sequence[Mapping[str, Any]], env: Mapping[str, str]) -> list[tuple[str, str]]:
        """Create the config's users that the store does not have yet (the store wins afterwards). The
        password of ``alice`` comes from ``IVR_USER_ALICE_PASSWORD``, else one is generated: returned as
        (username, password) to be shown once, never logged."""
        generated = []
        for e in entries:
            name = m.check_username(e.get("username"))
            if self.store.user(name) is not None:
                continue
            pw = env.get(f"IVR_USER_{name.upper().replace('-', '_').replace('.', '_')}_PASSWORD")
            if not pw:
                pw = m.generate_password()
                generated.append((name, pw))
            self.create_user(name, e.get("role"), pw, e.get("agent_id"), e.get("queues"))
        return generated


def check_seed(entries: Sequence[Any]) -> None:
    """The ``users:`` config section's shape (at config load, before anything starts)."""
    for e in entries:
        if not isinstance(e, Mapping) or set(e) - {"username", "role", "agent_id", "queues"}:
            raise UserError("invalid-user", "users: each entry is {username, role, agent_id?, queues?}; "
                                            "passwords come from IVR_USER_<NAME>_PASSWORD or are generated")
        role = m.check_role(e.get("role"))
        m.check_username(e.get("username"))
        m.check_fields(role, e.get("agent_id"), e.get("queues"))
