"""Logging helpers: phone numbers are masked, and every record can carry the call id.

Nothing that identifies a caller goes to logs in full: `mask_number('+442079460123')` -> '+44*******23'.
Digits collected in a `secure` flow step never reach this module at all (the flow engine redacts them).
"""

from __future__ import annotations

import logging
import sys


def mask_number(number: str | None) -> str:
    if not number:
        return "<none>"
    s = str(number)
    digits = [c for c in s if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(s)
    keep_head = 3 if s.startswith("+") else 2
    keep_tail = 2
    out, seen = [], 0
    n = len(digits)
    for c in s[:64]:
        if c.isdigit():
            seen += 1
            out.append(c if seen <= keep_head - (1 if s.startswith("+") else 0) or seen > n - keep_tail else "*")
        else:
            out.append(c)
    return "".join(out)


class CallLog(logging.LoggerAdapter):
    """A logger that prefixes every record with the call id."""

    def process(self, msg, kwargs):  # type: ignore[override]
        return f"[{self.extra['call']}] {msg}", kwargs


def setup_logging(level: str = "INFO", file: str = "") -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file:
        handlers.append(logging.FileHandler(file))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
