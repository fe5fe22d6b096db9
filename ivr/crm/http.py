"""HTTP CRM adapter: look the caller up in an external CRM over a JSON HTTP API.

What it is for: ``GET https://crm.example/api/customers?phone={e164}`` (URL
template, value percent-encoded) with an auth header from config or the
environment, mapped onto ``Customer`` by ``CustomerMapping``, within a short
timeout (300 ms by default) because the caller is waiting.

Failure handling, in order of cost:

* a TTL cache answers repeat lookups (found and not-found, different TTLs;
  failures are never cached);
* a circuit breaker skips the network entirely while the CRM is known to be
  down (status ``circuit_open``);
* every failure (timeout, refused connection, 5xx, HTML, truncated JSON, wrong
  types) is a ``LookupResult`` with status ``error``/``timeout`` and no
  customer — never an exception into the call;
* an outage is logged once, when the breaker opens, and once when it closes
  again; single failures are counted in ``stats`` and logged at DEBUG.

The auth value never reaches a log or a ``repr``; URLs are not logged either
(they contain the caller's number), only the CRM host. Optionally posts each
finished call to ``history_url``; the local interaction history (repeat caller,
last agent) lives in an optional ``SqliteCrm`` passed as ``history``. History
POSTs share the breaker with lookups (same CRM): while it is open they are
skipped and counted, not queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import string
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from ivr.crm.breaker import BreakerState, CircuitBreaker, Transition
from ivr.crm.cache import MISS, TTLCache
from ivr.crm.errors import CrmConfigError
from ivr.crm.lookup import CrmStats
from ivr.crm.mapping import CustomerMapping, MappingError
from ivr.crm.model import Customer, Interaction, LookupResult, LookupStatus
from ivr.crm.phone import is_e164, mask

from .errors import check_keys

if TYPE_CHECKING:
    from ivr.crm.store import SqliteCrm

__all__ = ["HttpCrm", "HttpCrmConfig", "render_url"]

log = logging.getLogger("ivr.crm.http")

_LOOKUP_FIELDS = frozenset({"e164", "digits"})
_HISTORY_FIELDS = frozenset({"e164", "digits", "customer_id", "call_id"})


def _template_fields(where: str, template: str, allowed: frozenset[str]) -> set[str]:
    try:
        names = {name for _, name, spec, conv in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise CrmConfigError(f"{where}: malformed template ({exc})") from None
    bad = names - allowed
    if bad:
        raise CrmConfigError(f"{where}: unknown placeholder(s) {sorted(bad)} (allowed: {sorted(allowed)})")
    return names


def render_url(template: str, **values: str) -> URL:
    """Fill ``{name}`` placeholders with percent-encoded values (``+`` -> ``%2B``).

    Encoding with ``safe=""`` makes a value safe in a path segment and in a query
    string alike; ``encoded=True`` stops yarl from decoding it again.
    """
    quoted = {k: urllib.parse.quote(v, safe="") for k, v in values.items()}
    return URL(template.format(**quoted), encoded=True)


def _num(where: str, v: Any, *, minimum: float = 0.0, integer: bool = False) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
        raise CrmConfigError(f"{where}: expected a {'whole ' if integer else ''}number, got {v!r}")
    if v < minimum:
        raise CrmConfigError(f"{where}: must be >= {minimum}")
    return v


_keys = check_keys


@dataclass(frozen=True)
class HttpCrmConfig:
    url: str
    timeout_seconds: float = 0.3
    auth_header: str | None = None
    auth_value: str | None = field(default=None, repr=False)  # secret: never logged
    headers: Mapping[str, str] = field(default_factory=dict)
    mapping: CustomerMapping = field(default_factory=CustomerMapping)
    positive_ttl_seconds: float = 300.0
    negative_ttl_seconds: float = 60.0
    cache_max_entries: int = 10_000
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    not_found_statuses: frozenset[int] = frozenset({404})
    history_url: str | None = None
    history_timeout_seconds: float = 2.0
    max_body_bytes: int = 256 * 1024
    max_connections: int = 20
    default_region: str = "GB"

    ALLOWED_KEYS = frozenset(
        {
            "url",
            "timeout_ms",
            "auth",
            "headers",
            "mapping",
            "cache",
            "breaker",
            "not_found_status",
            "history_url",
            "history_timeout_ms",
            "max_body_bytes",
            "max_connections",
        }
    )

    def __post_init__(self) -> None:
        for where, tpl, allowed in (
            ("url", self.url, _LOOKUP_FIELDS),
            ("history_url", self.history_url, _HISTORY_FIELDS),
        ):
            if tpl is None:
                continue
            if not isinstance(tpl, str):
                raise CrmConfigError(f"{where}: expected a string")
            names = _template_fields(where, tpl, allowed)
            if where == "url" and not names & {"e164", "digits"}:
                raise CrmConfigError("url: must contain {e164} or {digits}")
            scheme = urllib.parse.urlsplit(tpl).scheme
            if scheme not in ("http", "https"):
                raise CrmConfigError(f"{where}: must start with http:// or https://")
        if self.timeout_seconds <= 0:
            raise CrmConfigError("timeout_ms: must be > 0")
        if (self.auth_header is None) != (self.auth_value is None):
            raise CrmConfigError("auth: both header and value are needed")

    @property
    def host(self) -> str:
        """CRM host for log lines (the full URL would contain the caller's number)."""
        return urllib.parse.urlsplit(self.url).netloc

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], *, env: Mapping[str, str] | None = None, default_region: str = "GB"
    ) -> HttpCrmConfig:
        """Build from the ``http:`` config section. Unknown keys raise ``CrmConfigError``.

        ``auth: {header: Authorization, value_env: CRM_TOKEN}`` reads the secret
        from the environment (preferred); ``value:`` inline is accepted for tests.
        """
        env = os.environ if env is None else env
        d = _keys("crm.http", d, set(cls.ALLOWED_KEYS))
        if "url" not in d:
            raise CrmConfigError("crm.http.url is required")
        kwargs: dict[str, Any] = {"url": d["url"], "default_region": default_region}
        if "timeout_ms" in d:
            kwargs["timeout_seconds"] = _num("crm.http.timeout_ms", d["timeout_ms"], minimum=1) / 1000.0
        auth = _keys("crm.http.auth", d.get("auth"), {"header", "value", "value_env"})
        if auth:
            header = auth.get("header")
            if not isinstance(header, str) or not header.strip():
                raise CrmConfigError("crm.http.auth.header: header name required (e.g. Authorization)")
            if ("value" in auth) == ("value_env" in auth):
                raise CrmConfigError("crm.http.auth: give exactly one of value or value_env")
            if "value_env" in auth:
                name = auth["value_env"]
                if not isinstance(name, str) or name not in env or not env[name]:
                    # Name the variable, never a value.
                    raise CrmConfigError(f"crm.http.auth.value_env: environment variable {name!r} is not set")
                value = env[name]
            else:
                value = auth["value"]
                if not isinstance(value, str) or not value:
                    raise CrmConfigError("crm.http.auth.value: must be a non-empty string")
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", header.strip()):
                raise CrmConfigError("crm.http.auth.header: not a valid HTTP header name")
            if "\n" in value or "\r" in value:
                raise CrmConfigError("crm.http.auth: value must be a single line")
            kwargs["auth_header"] = header.strip()
            kwargs["auth_value"] = value
        headers = d.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise CrmConfigError("crm.http.headers: expected {name: value} strings")
        kwargs["headers"] = dict(headers)
        try:
            kwargs["mapping"] = CustomerMapping.from_dict(d.get("mapping"))
        except ValueError as exc:
            raise CrmConfigError(f"crm.http.{exc}") from None
        cache = _keys(
            "crm.http.cache", d.get("cache"), {"ttl_seconds", "negative_ttl_seconds", "max_entries"}
        )
        if "ttl_seconds" in cache:
            kwargs["positive_ttl_seconds"] = float(_num("crm.http.cache.ttl_seconds", cache["ttl_seconds"]))
        if "negative_ttl_seconds" in cache:
            kwargs["negative_ttl_seconds"] = float(
                _num("crm.http.cache.negative_ttl_seconds", cache["negative_ttl_seconds"])
            )
        if "max_entries" in cache:
            kwargs["cache_max_entries"] = _num(
                "crm.http.cache.max_entries", cache["max_entries"], minimum=1, integer=True
            )
        breaker = _keys("crm.http.breaker", d.get("breaker"), {"failure_threshold", "cooldown_seconds"})
        if "failure_threshold" in breaker:
            kwargs["failure_threshold"] = _num(
                "crm.http.breaker.failure_threshold", breaker["failure_threshold"], minimum=1, integer=True
            )
        if "cooldown_seconds" in breaker:
            kwargs["cooldown_seconds"] = float(
                _num("crm.http.breaker.cooldown_seconds", breaker["cooldown_seconds"], minimum=0.001)
            )
        if "not_found_status" in d:
            nf = d["not_found_status"]
            nf = [nf] if isinstance(nf, int) else nf
            if not isinstance(nf, list) or not all(isinstance(s, int) and 400 <= s < 500 for s in nf):
                raise CrmConfigError("crm.http.not_found_status: expected a 4xx status or a list of them")
            kwargs["not_found_statuses"] = frozenset(nf)
        if d.get("history_url") is not None:
            kwargs["history_url"] = d["history_url"]
        if "history_timeout_ms" in d:
            kwargs["history_timeout_seconds"] = (
                _num("crm.http.history_timeout_ms", d["history_timeout_ms"], minimum=1) / 1000.0
            )
        if "max_body_bytes" in d:
            kwargs["max_body_bytes"] = _num(
                "crm.http.max_body_bytes", d["max_body_bytes"], minimum=1, integer=True
            )
        if "max_connections" in d:
            kwargs["max_connections"] = _num(
                "crm.http.max_connections", d["max_connections"], minimum=1, integer=True
            )
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise CrmConfigError(f"crm.http.{exc}") from None


class _Failure(Exception):
    """Internal: a request failed for ``reason`` (a short token safe to log and count)."""

    def __init__(self, reason: str, status: LookupStatus = LookupStatus.ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class HttpCrm:
    """``CrmLookup`` over an HTTP JSON API, with cache and circuit breaker."""

    source = "http"

    def __init__(
        self,
        config: HttpCrmConfig,
        *,
        history: SqliteCrm | None = None,
        clock: Callable[[], float] = time.monotonic,
        stats: CrmStats | None = None,
    ) -> None:
        self.config = config
        self.history = history
        self.stats = stats if stats is not None else CrmStats()
        self.cache: TTLCache[Customer | None] = TTLCache(config.cache_max_entries, clock)
        self.breaker = CircuitBreaker(config.failure_threshold, config.cooldown_seconds, clock)
        self._session: aiohttp.ClientSession | None = None
        self._last_reason = ""

    # ------------------------------------------------------------------ session

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be made inside the running loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
            headers = {"Accept": "application/json", **self.config.headers}
            if self.config.auth_header:
                assert self.config.auth_value is not None
                headers[self.config.auth_header] = self.config.auth_value
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None),  # per request, below
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        if self.history is not None:
            await self.history.close()

    # ------------------------------------------------------------------ breaker / logging

    def _on_transition(self, t: Transition | None) -> None:
        if t is None:
            return
        if t.old is BreakerState.CLOSED and t.new is BreakerState.OPEN:
            self.stats.breaker_opens += 1
            log.warning(
                "CRM %s unreachable (%s, %d consecutive failures): skipping CRM lookups for %.0f s, "
                "calls route by default",
                self.config.host,
                self._last_reason,
                t.consecutive_failures,
                self.config.cooldown_seconds,
            )
        elif t.new is BreakerState.CLOSED:
            log.info("CRM %s reachable again: lookups resumed", self.config.host)
        else:
            # Half-open probe failed: same outage, already reported.
            log.debug("CRM %s still unreachable (%s)", self.config.host, self._last_reason)

    def _failed(self, reason: str, number: str | None) -> None:
        self._last_reason = reason
        self.stats.fail(reason)
        log.debug("CRM %s request failed: %s (caller %s)", self.config.host, reason, mask(number))
        self._on_transition(self.breaker.record_failure())

    def _succeeded(self) -> None:
        self._on_transition(self.breaker.record_success())

    # ------------------------------------------------------------------ lookup

    async def lookup(self, e164: str | None) -> LookupResult:
        started = time.perf_counter()
        if not e164 or not is_e164(e164):
            result = LookupResult(LookupStatus.ANONYMOUS, None, self.source, 0.0)
            self.stats.observe(result)
            return result
        (status, customer, source, detail), (repeat, last) = await asyncio.gather(
            self._customer(e164), self._history_flags(e164)
        )
        result = LookupResult(
            status,
            customer,
            source,
            time.perf_counter() - started,
            repeat_caller=repeat,
            last_agent=last,
            caller=e164,
            detail=detail,
        )
        self.stats.observe(result)
        return result

    async def _history_flags(self, e164: str) -> tuple[bool, str | None]:
        if self.history is None:
            return False, None
        try:
            return await self.history.history_flags(e164)
        except Exception as exc:  # noqa: BLE001 - history is a nice-to-have on the call path
            log.debug("CRM local history failed: %s", type(exc).__name__)
            return False, None

    async def _customer(self, e164: str) -> tuple[LookupStatus, Customer | None, str, str]:
        cached = self.cache.get(e164)
        if cached is not MISS:
            self.stats.cache_hits += 1
            status = LookupStatus.FOUND if cached is not None else LookupStatus.NOT_FOUND
            return status, cached, "http-cache", ""  # type: ignore[return-value]
        self.stats.cache_misses += 1
        if not self.breaker.allow():
            self.stats.short_circuited += 1
            return LookupStatus.CIRCUIT_OPEN, None, self.source, "circuit_open"
        self.stats.requests += 1
        try:
            customer = await self._fetch(e164)
        except _Failure as f:
            self._failed(f.reason, e164)
            return f.status, None, self.source, f.reason
        except asyncio.CancelledError:
            # The call went away (or an outer budget fired): no verdict on the CRM.
            self.breaker.release()
            raise
        except Exception as exc:  # noqa: BLE001 - never into the call
            reason = f"unexpected_{type(exc).__name__}"
            self._failed(reason, e164)
            return LookupStatus.ERROR, None, self.source, reason
        self._succeeded()
        ttl = self.config.positive_ttl_seconds if customer else self.config.negative_ttl_seconds
        self.cache.put(e164, customer, ttl)
        return (LookupStatus.FOUND if customer else LookupStatus.NOT_FOUND), customer, self.source, ""

    async def _fetch(self, e164: str) -> Customer | None:
        url = render_url(self.config.url, e164=e164, digits=e164.lstrip("+"))
        session = self._get_session()
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status in self.config.not_found_statuses:
                        return None
                    if resp.status >= 500:
                        raise _Failure(f"http_{resp.status}")
                    if resp.status != 200:
                        raise _Failure(f"http_{resp.status}")
                    body = await self._read_body(resp)
        except TimeoutError:
            raise _Failure("timeout", LookupStatus.TIMEOUT) from None
        except aiohttp.ClientConnectorError:
            raise _Failure("connect") from None
        except aiohttp.ClientPayloadError:
            raise _Failure("truncated") from None
        except aiohttp.ServerDisconnectedError:
            raise _Failure("disconnected") from None
        except aiohttp.ClientError as exc:
            raise _Failure(f"client_{type(exc).__name__}") from None
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise _Failure("bad_json") from None
        try:
            customer, fallbacks = self.config.mapping.map(
                doc, caller=e164, default_region=self.config.default_region
            )
        except MappingError:
            raise _Failure("bad_document") from None
        if fallbacks:
            self.stats.mapping_fallbacks += len(fallbacks)
            log.debug(
                "CRM answer for %s: field(s) %s had wrong types, defaults used",
                mask(e164),
                ", ".join(fallbacks),
            )
        return customer

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.config.max_body_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise _Failure("too_large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(16384):
            size += len(chunk)
            if size > limit:
                raise _Failure("too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    # ------------------------------------------------------------------ history

    async def record_interaction(self, e164: str | None, interaction: Interaction) -> None:
        number = e164 if e164 and is_e164(e164) else None
        if self.history is not None:
            await self.history.record_interaction(number, interaction)
        if self.config.history_url is None:
            return
        customer_id = interaction.customer_id
        if customer_id is None and number is not None:
            cached = self.cache.get(number)
            customer_id = cached.customer_id if isinstance(cached, Customer) else None
        if "{customer_id}" in self.config.history_url and not customer_id:
            self.stats.history_post_skipped += 1  # nowhere to post an unknown caller's call
            return
        if not self.breaker.allow():
            self.stats.history_post_skipped += 1
            return
        url = render_url(
            self.config.history_url,
            e164=number or "",
            digits=(number or "").lstrip("+"),
            customer_id=customer_id or "",
            call_id=interaction.call_id,
        )
        body = interaction.as_dict()
        body["caller"] = number
        body["customer_id"] = customer_id
        try:
            async with asyncio.timeout(self.config.history_timeout_seconds):
                async with self._get_session().post(url, json=body, allow_redirects=False) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        raise _Failure(f"history_http_{resp.status}")
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        except (_Failure, TimeoutError, aiohttp.ClientError) as exc:
            reason = (
                exc.reason
                if isinstance(exc, _Failure)
                else ("history_timeout" if isinstance(exc, TimeoutError) else f"history_{type(exc).__name__}")
            )
            self.stats.history_post_failures += 1
            self._failed(reason, number)
            return
        self.stats.history_posts += 1
        self._succeeded()

    async def recent_interactions(self, e164: str, limit: int = 10) -> list[Interaction]:
        if self.history is None:
            return []
        return await self.history.recent_interactions(e164, limit)
