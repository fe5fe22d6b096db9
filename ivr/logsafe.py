"""Logging helpers: phone numbers are masked, and every record can carry the call id.

Nothing that identifies a caller goes to logs in full: `mask_number('+442079460034')` -> '+4420******34'.
Digits collected in a `secure` flow step never reach this module at all (the flow engine redacts them).
"""

from __future__ import annotations

import logging
import sys

from .crm.phone import mask as mask_number  # the one masking rule, shared with the CRM

__all__ = ["CallLog", "mask_number", "setup_logging"]


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
