"""Caller-ID normalisation to E.164 and masking of phone numbers for logs.

What it is for: turning whatever Asterisk hands us as CALLERID(num) (national
format, ``00`` prefixes, spaces, dashes, full-width or Arabic-Indic digits,
``anonymous``, ``Restricted``, junk) into either an E.164 string such as
``+442079460018`` or ``None`` meaning "unknown caller". It never raises: a bad
caller ID must not cost the caller their call.

``mask()`` is the only way a phone number may reach a log record anywhere in
``ivr.crm``: phone numbers are personal data.

Pure module: it must not import asyncio, aiohttp or sqlite3 (only the
``phonenumbers`` library and the standard library).
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["MAX_RAW_LENGTH", "is_e164", "mask", "normalize"]

# A real caller ID, even with a SIP-ish "tel:" prefix and generous punctuation,
# fits easily in 40 characters. Anything longer is garbage or an attack on the
# parser (libphonenumber is regex based); refuse it before parsing. A whole SIP
# URI (``sip:+44...@host:port;user=phone``) may be longer: up to MAX_URI_LENGTH
# is accepted for the cheap string splitting, and its number part must then fit
# in MAX_RAW_LENGTH.
MAX_RAW_LENGTH = 40
MAX_URI_LENGTH = 256

# Values Asterisk and carriers put in the number field when the caller is
# withheld. They are compared case-insensitively after stripping.
_WITHHELD = frozenset(
    {
        "anonymous",
        "restricted",
        "private",
        "withheld",
        "unknown",
        "unavailable",
        "blocked",
        "no caller id",
        "not available",
        "out of area",
        "p",  # some SS7 gateways
        "o",
    }
)

# E.164: '+', a non-zero country code digit, at most 15 digits in total.
_E164_RE = re.compile(r"^\+[1-9][0-9]{5,14}$")
# Characters a formatted number may legitimately contain besides digits.
_PUNCTUATION = frozenset(" \t-.()/+\u00a0\u2010\u2011\u2012\u2013\u2212\uff0b\uff0d\uff08\uff09")


def is_e164(value: object) -> bool:
    """True if ``value`` is already a well-formed E.164 string (ASCII digits)."""
    return isinstance(value, str) and _E164_RE.match(value) is not None


def normalize(raw: object, default_region: str = "GB") -> str | None:
    """Return ``raw`` as E.164, or ``None`` for an unknown/withheld/garbage caller ID.

    ``default_region`` (ISO 3166 alpha-2, e.g. ``"GB"``, ``"US"``, ``"FR"``) says how
    to read a number written without its country code. Never raises.
    """
    if not isinstance(raw, str):
        return None
    if len(raw) > MAX_URI_LENGTH * 4:       # do not even strip() 10 kB of junk
        return None
    text = raw.strip()
    if not text or len(text) > MAX_URI_LENGTH:
        return None
    if text.casefold() in _WITHHELD:
        return None
    lowered = text.casefold()
    for prefix in ("tel:", "sip:", "sips:"):
        if lowered.startswith(prefix):
            # A URI may carry ';params' after the number (tel:+44...;phone-context=...).
            text = text[len(prefix) :].split(";", 1)[0]
            break
    # A SIP user part may carry '@host': the number is before it.
    text = text.split("@", 1)[0]
    if len(text) > MAX_RAW_LENGTH:
        return None
    # Letters mean this is not a number (libphonenumber would happily turn vanity
    # letters into digits, which is wrong for a caller ID). Unicode digits are fine:
    # str.isdigit() is True for them and libphonenumber maps them to ASCII.
    digits = 0
    for ch in text:
        if ch.isdigit():
            digits += 1
        elif ch not in _PUNCTUATION and not ch.isspace():
            return None
    if digits < 3:
        return None
    text = "".join(" " if ch.isspace() else ch for ch in text)    # em spaces etc. from a copy-paste
    try:
        parsed = phonenumbers.parse(text, (default_region or "ZZ").upper())
    except phonenumbers.NumberParseException:
        return None
    except Exception:  # noqa: BLE001 - defensive: a library bug must not reach the call
        return None
    # "Possible" (right length for the country) rather than "valid" (in an
    # allocated range): metadata lags real allocations, and turning a real
    # customer into an unknown caller is worse than one wasted CRM query.
    if not phonenumbers.is_possible_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164 if is_e164(e164) else None


def dialable(raw: object, default_region: str = "GB") -> str | None:
    """``raw`` as E.164 when it is a number we can call back: ``normalize`` and a length that is possible
    for a full number of its country (a number only possible when dialled locally, e.g. a UK area code with
    a few digits, is refused: the trunk could not reach it). Never raises."""
    e164 = normalize(raw, default_region)
    if e164 is None:
        return None
    try:
        reason = phonenumbers.is_possible_number_with_reason(phonenumbers.parse(e164, None))
    except Exception:  # noqa: BLE001 - defensive: a library bug must not reach the caller
        return None
    return e164 if reason == phonenumbers.ValidationResult.IS_POSSIBLE else None


def _country_code_length(e164: str) -> int:
    """Length of the country calling code of a well-formed E.164 string."""
    for n in (1, 2, 3):
        if int(e164[1 : 1 + n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return n
    return 1


def mask(number: object) -> str:
    """Mask a phone number for logs: ``+442079460034`` -> ``+4420******34``.

    Keeps the country code, the first two national digits (the area, which
    helps operators tell a regional outage apart) and the last two digits.
    Anything that is not E.164 is masked entirely except its last two digits.
    Never raises; ``None`` gives ``"<none>"``.
    """
    if number is None:
        return "<none>"
    if not isinstance(number, str):
        number = str(number)
    if is_e164(number):
        cc = _country_code_length(number)
        national = number[1 + cc :]
        head = national[:2] if len(national) >= 8 else ""
        tail = national[-2:] if len(national) >= 4 else ""
        hidden = len(national) - len(head) - len(tail)
        return "+" + number[1 : 1 + cc] + head + "*" * hidden + tail
    # Not E.164 (raw caller ID, garbage): reveal only the last two digits and a
    # bounded length, so a 10 kB junk string does not flood the log.
    ascii_digits = [c for c in number if c.isdigit()]
    if len(ascii_digits) < 4:
        return "*" * min(len(number), 4) or "<empty>"
    return "*" * min(len(ascii_digits) - 2, 16) + "".join(ascii_digits[-2:])
