"""Users, roles and the secrets that prove who someone is (pure: no I/O, no clock).

* Passwords: stdlib ``hashlib.scrypt`` (memory-hard), a fresh 16-byte salt per hash, the parameters stored
  with the hash (``scrypt$<n>$<r>$<p>$<salt>$<hash>``, base64), compared with ``hmac.compare_digest``.
* Session ids and API tokens are 256-bit random secrets (``secrets.token_urlsafe``); only their SHA-256 is
  stored, so a copy of the database gives no live session or token (a fast hash is right for a random
  secret of that size, unlike for a password).
* A session's CSRF token is derived from its id (``csrf_token``): nothing more to store, and only a page of
  this origin, which can read ``GET /api/me``, learns it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

ROLES = ("agent", "supervisor", "admin")
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
PASSWORD_MIN, PASSWORD_MAX = 10, 256          # characters; the maximum bounds scrypt's input
TOKEN_NAME_MAX = 64
TOKEN_PREFIX = "ivr_"

# scrypt cost: 2**15 x 8 x 1 = 32 MiB and ~0.1 s per hash; tests pass cheaper parameters
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1


class UserError(ValueError):
    """A user field is not acceptable; ``error_id`` is the API's stable id."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


@dataclass(frozen=True)
class User:
    username: str
    role: str
    password_hash: str = ""
    agent_id: str | None = None
    queues: frozenset[str] = field(default_factory=frozenset)
    disabled: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """What the API shows: never the password hash."""
        return {"username": self.username, "role": self.role, "agent_id": self.agent_id,
                "queues": sorted(self.queues), "disabled": self.disabled,
                "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass(frozen=True)
class Session:
    id_hash: str
    username: str
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class ApiToken:
    id: str
    username: str
    name: str
    token_hash: str
    created_at: float
    last_used: float | None = None
    revoked_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Listed without the secret (nor its hash)."""
        return {"id": self.id, "username": self.username, "name": self.name, "created_at": self.created_at,
                "last_used": self.last_used, "revoked": self.revoked_at is not None}


# --------------------------------------------------------------------------------------- passwords
def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P,
                  salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                            maxmem=max(64 * 1024 * 1024, 256 * n * r), dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded`; False for any malformed hash (never raises)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), maxmem=max(64 * 1024 * 1024, 256 * int(n) * int(r)),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


#: compared against when the user does not exist, so that an unknown name costs the same time
DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$AAAAAAAAAAAAAAAAAAAAAA==${'A' * 43}="


def check_password_policy(password: Any) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise UserError("weak-password", f"a password is a string of {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if "\x00" in password:
        raise UserError("weak-password", "a password cannot contain NUL")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(15)          # 20 characters, 120 bits


# ---------------------------------------------------------------------------- sessions and tokens
def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_token() -> tuple[str, str]:
    """(token id, the token itself): ``ivr_<id>_<secret>``; the id lets a listing name it."""
    tid = secrets.token_hex(6)
    return tid, f"{TOKEN_PREFIX}{tid}_{new_secret()}"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(session_id: str) -> str:
    return hashlib.sha256(b"ivr-csrf\x00" + session_id.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------------- validation
def check_username(name: Any) -> str:
    if not isinstance(name, str) or not USERNAME.match(name):
        raise UserError("invalid-user", "username: 1-64 of a-z 0-9 . _ - (lower case, starting with a letter "
                                        "or digit)")
    return name


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise UserError("invalid-user", f"role must be one of {', '.join(ROLES)}")
    return str(role)


def check_fields(role: str, agent_id: Any, queues: Any) -> tuple[str | None, frozenset[str]]:
    """An agent user names its agent; a supervisor its queues; an admin neither (everything)."""
    if agent_id is not None and (not isinstance(agent_id, str) or not 0 < len(agent_id) <= 64
                                 or not agent_id.isprintable()):
        raise UserError("invalid-user", "agent_id must be an agent id")
    if queues is None:
        queues = []
    if not isinstance(queues, list) or len(queues) > 200 or not all(
            isinstance(q, str) and 0 < len(q) <= 64 and q.isprintable() for q in queues):
        raise UserError("invalid-user", "queues must be a list of queue names")
    if role == "agent" and agent_id is None:
        raise UserError("invalid-user", "an agent user needs an agent_id")
    if role == "admin" and (agent_id is not None or queues):
        raise UserError("invalid-user", "an admin has every right: no agent_id or queues")
    if role == "supervisor" and agent_id is not None:
        raise UserError("invalid-user", "a supervisor has queues, not an agent_id")
    if role == "agent" and queues:
        raise UserError("invalid-user", "an agent user's queues are its agent's: no queues")
    return agent_id, frozenset(queues)


def check_token_name(name: Any) -> str:
    if name is None:
        return "api"
    if not isinstance(name, str) or not 0 < len(name) <= TOKEN_NAME_MAX or not name.isprintable():
        raise UserError("invalid-token", f"name must be a printable string of 1-{TOKEN_NAME_MAX} characters")
    return name
