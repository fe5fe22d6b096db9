"""The users API: accounts (admin), API tokens (the user themself or an admin), the audit log (admin).

* ``GET/POST /api/users``, ``GET/PUT/DELETE /api/users/{username}``: admin; a user may read themself.
* ``GET/POST /api/users/{username}/tokens``, ``DELETE /api/users/{username}/tokens/{id}``: the user or an
  admin. A token is shown once, in the answer of its creation; listings never show it.
* ``POST /api/users/{username}/password``: the user (with ``current_password``) or an admin.
* ``GET /api/audit?actor=&action=&target=&limit=``: admin, newest first.

Every change is in the audit log, before and after, with no password, hash or token in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ..audit import AuditLog
from ..users import Accounts, LoginRefused, UserError
from .errors import ApiError, bad_request, json_body
from .identity import Principal, Role, forbidden, principal_of, require_role

USER_FIELDS = frozenset({"username", "role", "password", "agent_id", "queues"})
UPDATE_FIELDS = frozenset({"role", "password", "agent_id", "queues", "disabled"})
PASSWORD_FIELDS = frozenset({"password", "current_password"})
TOKEN_FIELDS = frozenset({"name"})
AUDIT_FILTERS = ("actor", "action", "target")

_STATUS = {"user-not-found": 404, "token-not-found": 404, "user-exists": 409, "last-admin": 409,
           "too-many-tokens": 409}


def _api(e: UserError) -> ApiError:
    return ApiError(_STATUS.get(e.error_id, 400), e.error_id, str(e))


@dataclass(frozen=True)
class UsersApi:
    accounts: Accounts
    audit: AuditLog | None
    agent_ids: Callable[[], tuple[str, ...]]          # known agents: an agent user must name one
    queue_names: Callable[[], tuple[str, ...]]        # known queues: a supervisor's must exist

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/users", self.index)
        r.add_post("/api/users", self.create)
        r.add_get("/api/users/{username}", self.one)
        r.add_put("/api/users/{username}", self.update)
        r.add_delete("/api/users/{username}", self.delete)
        r.add_post("/api/users/{username}/password", self.password)
        r.add_get("/api/users/{username}/tokens", self.tokens)
        r.add_post("/api/users/{username}/tokens", self.token_create)
        r.add_delete("/api/users/{username}/tokens/{token_id}", self.token_revoke)
        r.add_get("/api/audit", self.audit_index)

    def _record(self, p: Principal, request: web.Request, action: str, target: str, before=None, after=None) -> None:
        if self.audit is not None:
            self.audit.record(p.actor, action, target, before=before, after=after, address=request.remote)

    def _self_or_admin(self, request: web.Request) -> tuple[Principal, str]:
        p = principal_of(request)
        name = request.match_info["username"]
        if p.role is not Role.ADMIN and p.username != name:
            raise forbidden("only an admin manages other users")
        return p, name

    def _check_refs(self, body: dict) -> None:
        aid, queues = body.get("agent_id"), body.get("queues")
        if isinstance(aid, str) and aid not in self.agent_ids():
            raise bad_request("unknown-agent", "agent_id names no agent")
        if isinstance(queues, list):
            known = set(self.queue_names())
            if any(isinstance(q, str) and q not in known for q in queues):
                raise bad_request("unknown-queue", "queues names a queue that does not exist")

    # ------------------------------------------------------------------------------------ users
    async def index(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        return web.json_response({"users": [u.as_dict() for u in self.accounts.store.users()]})

    async def one(self, request: web.Request) -> web.Response:
        _p, name = self._self_or_admin(request)
        u = self.accounts.store.user(name)
        if u is None:
            raise ApiError(404, "user-not-found", "no such user")
        return web.json_response(u.as_dict())

    async def create(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.ADMIN)
        body = await json_body(request, USER_FIELDS)
        self._check_refs(body)
        try:
            u = self.accounts.create_user(body.get("username"), body.get("role"), body.get("password"),
                                          body.get("agent_id"), body.get("queues"))
        except UserError as e:
            raise _api(e) from None
        self._record(p, request, "user.create", f"user:{u.username}", after=u.as_dict())
        return web.json_response(u.as_dict(), status=201)

    async def update(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.ADMIN)
        name = request.match_info["username"]
        body = await json_body(request, UPDATE_FIELDS)
        self._check_refs(body)
        try:
            before, after = self.accounts.update_user(name, body)
        except UserError as e:
            raise _api(e) from None
        b, a = before.as_dict(), after.as_dict()
        if "password" in body:
            b["password"], a["password"] = "old", "new"       # scrubbed to *** by the audit log
        self._record(p, request, "user.update", f"user:{name}", before=b, after=a)
        return web.json_response(after.as_dict())

    async def delete(self, request: web.Request) -> web.Response:
        p = require_role(request, Role.ADMIN)
        name = request.match_info["username"]
        try:
            u = self.accounts.delete_user(name)
        except UserError as e:
            raise _api(e) from None
        self._record(p, request, "user.delete", f"user:{name}", before=u.as_dict())
        return web.Response(status=204)

    async def password(self, request: web.Request) -> web.Response:
        p, name = self._self_or_admin(request)
        body = await json_body(request, PASSWORD_FIELDS)
        if p.role is not Role.ADMIN or p.username == name:
            current = body.get("current_password")
            try:
                if not isinstance(current, str) or len(current) > 1024:
                    raise LoginRefused()
                self.accounts.authenticate(name, current)
            except LoginRefused:
                raise ApiError(403, "wrong-password", "current_password is not right") from None
        try:
            self.accounts.update_user(name, {"password": body.get("password")})
        except UserError as e:
            raise _api(e) from None
        self._record(p, request, "user.password", f"user:{name}", after={"password": "changed"})
        return web.json_response({"ok": True, "sessions": "ended: log in again"})

    # ----------------------------------------------------------------------------------- tokens
    async def tokens(self, request: web.Request) -> web.Response:
        _p, name = self._self_or_admin(request)
        if self.accounts.store.user(name) is None:
            raise ApiError(404, "user-not-found", "no such user")
        return web.json_response({"tokens": [t.as_dict() for t in self.accounts.store.tokens(name)]})

    async def token_create(self, request: web.Request) -> web.Response:
        p, name = self._self_or_admin(request)
        body = await json_body(request, TOKEN_FIELDS)
        try:
            t, raw = self.accounts.create_token(name, body.get("name"))
        except UserError as e:
            raise _api(e) from None
        self._record(p, request, "token.create", f"user:{name}", after=t.as_dict())
        return web.json_response({**t.as_dict(), "token": raw}, status=201)

    async def token_revoke(self, request: web.Request) -> web.Response:
        p, name = self._self_or_admin(request)
        tid = request.match_info["token_id"]
        try:
            self.accounts.revoke_token(name, tid)
        except UserError as e:
            raise _api(e) from None
        self._record(p, request, "token.revoke", f"user:{name}", after={"id": tid})
        return web.Response(status=204)

    # ------------------------------------------------------------------------------------ audit
    async def audit_index(self, request: web.Request) -> web.Response:
        require_role(request, Role.ADMIN)
        if self.audit is None:
            return web.json_response({"entries": []})
        q = request.query
        filters = {k: q[k] for k in AUDIT_FILTERS if q.get(k)}
        if any(len(v) > 200 for v in filters.values()):
            raise bad_request("invalid-request", "a filter is at most 200 characters")
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise bad_request("invalid-request", "limit must be an integer") from None
        if not 1 <= limit <= 1000:
            raise bad_request("invalid-request", "limit must be 1-1000")
        entries = self.audit.entries(**filters, limit=limit)
        return web.json_response({"entries": [e.as_dict() for e in entries]})
