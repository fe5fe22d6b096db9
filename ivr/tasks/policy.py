"""The ``callbacks:`` config section: how callback tasks (from the IVR, a voicemail, the web) are worked."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..sections import section_from_dict


class CallbackConfigError(ValueError):
    """The ``callbacks:`` config section is invalid; the message names the key."""


@dataclass(frozen=True)
class CallbackPolicy:
    #: Seconds before a customer who was busy / did not answer is dialled again (at the task's place).
    retry_delay: float = 300.0
    #: Customer dial-outs per task before it ends as failed.
    max_attempts: int = 3
    #: Seconds the customer's phone may ring before the attempt counts as no answer.
    ring_seconds: float = 30.0
    #: The trunk customers are dialled through (null: the only configured trunk).
    trunk: str | None = None

    def __post_init__(self) -> None:
        for name in ("retry_delay", "ring_seconds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise CallbackConfigError(f"callbacks.{name}: expected a number of seconds > 0, got {v!r}")
        n = self.max_attempts
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 20:
            raise CallbackConfigError(f"callbacks.max_attempts: expected an integer from 1 to 20, got {n!r}")
        if self.trunk is not None and (not isinstance(self.trunk, str) or not self.trunk):
            raise CallbackConfigError(f"callbacks.trunk: expected a trunk name, got {self.trunk!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> CallbackPolicy:
        return section_from_dict(cls, d, section="callbacks", error=CallbackConfigError)


class WebCallbackConfigError(ValueError):
    """The ``web_callbacks:`` config section is invalid; the message names the key."""


@dataclass(frozen=True)
class WebCallbackPolicy:
    #: Public topic -> queue ("billing" on the website may be queue "billing-fr" here).
    topics: Mapping[str, str] = field(default_factory=dict)
    #: How a number written without its country code is read (ISO 3166 alpha-2).
    default_region: str = "GB"
    #: At most this many requests per number per hour, and per client address per minute.
    per_number_per_hour: int = 3
    per_address_per_minute: int = 10
    max_days_ahead: float = 14.0
    min_window_minutes: float = 15.0
    #: The website's key (``Authorization: Bearer``); from IVR_WEB_CALLBACK_KEY, never from the file.
    api_key: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.topics, Mapping) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in self.topics.items()):
            raise WebCallbackConfigError("web_callbacks.topics: expected a map of topic -> queue name")
        r = self.default_region
        if not isinstance(r, str) or len(r) != 2 or not r.isalpha():
            raise WebCallbackConfigError(f"web_callbacks.default_region: expected a two-letter country code, "
                                         f"got {r!r}")
        for name in ("per_number_per_hour", "per_address_per_minute"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise WebCallbackConfigError(f"web_callbacks.{name}: expected an integer >= 1, got {v!r}")
        for name in ("max_days_ahead", "min_window_minutes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise WebCallbackConfigError(f"web_callbacks.{name}: expected a number > 0, got {v!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, api_key: str = "") -> WebCallbackPolicy:
        d = dict(d or {})
        key = str(d.pop("api_key", "") or api_key)      # put there from IVR_WEB_CALLBACK_KEY by load_config
        return section_from_dict(cls, d, section="web_callbacks", error=WebCallbackConfigError,
                                 exclude={"api_key"}, api_key=key)
