"""Who is asking, for every request: the auth middleware, login/logout, ``GET /api/me`` and the login page.

* ``Authorization: Bearer <token>``: a user's API token (``ivr_...``), or the environment's admin token
  while no enabled admin user exists (the bootstrap; afterwards 401 ``bootstrap-token-retired``). A wrong
  token is a 401 whatever the route. No CSRF check: a browser never adds this header by itself.
* Else the ``ivr_session`` cookie (HttpOnly, SameSite=Strict, Path=/, Max-Age = the session's life) set by
  ``POST /api/login``. A state-changing request (not GET/HEAD/OPTIONS) authenticated by the cookie must send
  the session's CSRF token in ``X-CSRF-Token`` (from the login answer or ``GET /api/me``) and, when the
  browser sends an ``Origin``, it must be this server's; a websocket opened with the cookie must come from
  this server's origin. Otherwise 403 ``csrf-failed``.
* Everything under ``/api/`` needs one of the two, except ``POST /api/login`` and the website's
  ``POST /api/callbacks`` (its own key). Pages decide themselves (``/agent`` sends to ``/login``).
* Login attempts are limited per client address (every attempt) and per user name (failed attempts):
  429 ``login-rate-limited`` with ``Retry-After``. Logins, failed logins and logouts go to the audit log
  (never a password).

The middleware puts a `Principal` on the request (``identity.PRINCIPAL_KEY``); routes check roles with
``identity.require_*``.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from ..audit import AuditLog
from ..users import Accounts, LoginRefused, User
from ..users.model import csrf_token
from .errors import ApiError, json_body
from .identity import BOOTSTRAP, PRINCIPAL_KEY, Principal, Role, principal_of, unauthenticated
from .pages import html_response, page
from .ratelimit import RateLimit

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "ivr_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_KEY = web.RequestKey("ivr_session_id", str)   # the raw session id of a cookie-authenticated request
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: routes with their own check or none, where a cookie is not even looked at
PUBLIC = frozenset({("POST", "/api/callbacks"), ("POST", "/callback"), ("POST", "/api/login")})
LOGIN_FIELDS = frozenset({"username", "password"})


def principal_for(user: User, via: str) -> Principal:
    return Principal(user.username, Role(user.role), user.agent_id, frozenset(user.queues), via=via)


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _host_port(netloc: str, scheme: str) -> str:
    """``host[:port]`` lower-cased, the scheme's default port written out (``example.com`` on https ->
    ``example.com:443``)."""
    netloc = netloc.lower()
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit() and (not host.startswith("[") or host.endswith("]")):
        return netloc                                   # a port is given ("[::1]:8080"; not "[::1]")
    return f"{netloc}:{_DEFAULT_PORTS.get(scheme, '')}"


def same_origin(request: web.Request, origin: str) -> bool:
    """`origin` names the host (and port) the request was sent to. The scheme is not compared: behind a
    proxy that ends TLS the browser's origin is ``https://`` while the app sees plain http; the proxy must
    keep the ``Host`` header (docs/api.md). An origin on another host or port is refused."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    given = _host_port(parts.netloc, parts.scheme)
    return given in {_host_port(request.host, "http"), _host_port(request.host, "https")}


class Auth:
    def __init__(self, accounts: Accounts | None, admin_token: str, audit: AuditLog | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts, self.admin_token, self.audit = accounts, admin_token, audit
        pol = accounts.policy if accounts is not None else None
        window = pol.login_window if pol else 300.0
        self.per_user = RateLimit(pol.login_per_user if pol else 5, window, clock)
        self.per_address = RateLimit(pol.login_per_address if pol else 30, window, clock)

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/login", self.login_page)
        r.add_post("/api/login", self.login)
        r.add_post("/api/logout", self.logout)
        r.add_get("/api/me", self.me)

    # --------------------------------------------------------------------------------- identify
    def token_principal(self, given: str | None) -> Principal:
        """The principal of a bearer token (also the agent websocket's ``{"auth": token}``); 401 if none."""
        admin = self.admin_token
        if not given:
            raise self._nobody()
        if admin and hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                         admin.encode("utf-8", "surrogatepass")):
            if self.accounts is not None and self.accounts.has_admin():
                raise ApiError(401, "bootstrap-token-retired", "the admin token only bootstraps the first "
                                                               "admin user; log in or use an API token")
            return BOOTSTRAP
        found = self.accounts.token_user(given) if self.accounts is not None else None
        if found is None:
            raise self._nobody()
        return principal_for(found[0], "token")

    def _nobody(self) -> ApiError:
        """401, or 503 ``admin-disabled`` when nobody at all could log in (no admin token, no user)."""
        if not self.admin_token and (self.accounts is None or not self.accounts.store.users()):
            return ApiError(503, "admin-disabled", "no admin token configured (http.admin_token) and no users")
        return unauthenticated()

    def _identify(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, given = header.partition(" ")
            request[PRINCIPAL_KEY] = self.token_principal(given.strip() if scheme.lower() == "bearer" else None)
            return
        raw = request.cookies.get(SESSION_COOKIE)
        if raw and self.accounts is not None and len(raw) <= 128:
            found = self.accounts.session_user(raw)
            if found is not None:
                request[PRINCIPAL_KEY] = principal_for(found[0], "session")
                request[SESSION_KEY] = raw

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.method, request.path) in PUBLIC:
            return await handler(request)
        self._identify(request)
        raw = request.get(SESSION_KEY)
        if raw is not None:
            origin = request.headers.get("Origin")
            upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
            if (origin is not None or upgrade) and not same_origin(request, origin or ""):
                raise ApiError(403, "csrf-failed", "the request does not come from this server's pages")
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), csrf_token(raw).encode()):
                    raise ApiError(403, "csrf-failed", f"send the session's CSRF token in {CSRF_HEADER}")
        if (request.path.startswith("/api/") or request.path == "/api") and PRINCIPAL_KEY not in request:
            raise self._nobody()
        return await handler(request)

    # ----------------------------------------------------------------------------------- routes
    async def login_page(self, request: web.Request) -> web.Response:
        return html_response(page("login"))

    async def login(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(request, origin):
            raise ApiError(403, "csrf-failed", "log in from this server's login page")
        address = request.remote or "-"
        wait = self.per_address.hit(address)
        if wait > 0:
            raise _limited(wait)
        if self.accounts is None:
            raise ApiError(503, "users-disabled", "no user store (storage.path)")
        body = await json_body(request, LOGIN_FIELDS)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not 0 < len(username) <= 64 \
                or not 0 < len(password) <= 1024:
            raise ApiError(400, "invalid-request", "username and password are required strings")
        username = username.strip().lower()
        wait = self.per_user.retry_after(username)
        if wait > 0:
            raise _limited(wait)
        try:
            user = self.accounts.authenticate(username, password)
        except LoginRefused:
            self.per_user.hit(username)
            # an unknown name is not recorded: it is often a password typed into the wrong field
            known = self.accounts.store.user(username) is not None
            self._audit("-", "login-failed", f"user:{username}" if known else "user:(unknown)", address)
            raise ApiError(401, "login-failed", "wrong user name or password") from None
        raw, session = self.accounts.start_session(user)
        self._audit(user.username, "login", f"user:{user.username}", address)
        resp = web.json_response({**user.as_dict(), "csrf_token": csrf_token(raw), "expires_at": session.expires_at})
        resp.set_cookie(SESSION_COOKIE, raw, max_age=math.ceil(session.expires_at - session.created_at), path="/",
                        httponly=True, samesite="Strict", secure=request.secure)
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        p = principal_of(request)
        raw = request.get(SESSION_KEY)
        if raw is None or self.accounts is None:
            raise ApiError(400, "not-a-session", "only a login session logs out; revoke an API token instead")
        self.accounts.end_session(raw)
        self._audit(p.actor, "logout", f"user:{p.username}", request.remote or "-")
        resp = web.json_response({"ok": True})
        resp.del_cookie(SESSION_COOKIE, path="/")
        return resp

    async def me(self, request: web.Request) -> web.Response:
        p = principal_of(request)
        raw = request.get(SESSION_KEY)
        return web.json_response({"username": p.username, "role": p.role.value, "agent_id": p.agent_id,
                                  "queues": sorted(p.queues), "via": p.via,
                                  "csrf_token": csrf_token(raw) if raw else None})

    def _audit(self, actor: str, action: str, target: str, address: str) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, address=address)


def _limited(wait: float) -> ApiError:
    return ApiError(429, "login-rate-limited", "too many login attempts; wait and try again",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))})
