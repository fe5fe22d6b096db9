"""Caller-ID normalisation to E.164 and masking for logs (ivr.crm.phone)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.crm.phone import is_e164, mask, normalize


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("020 7946 0018", "GB", "+442079460018"),  # national
        ("02079460018", "GB", "+442079460018"),
        ("+44 20 7946 0018", "US", "+442079460018"),  # international wins over region
        ("0044 20 7946 0018", "GB", "+442079460018"),  # IDD prefix
        ("+44-20-7946-0018", "GB", "+442079460018"),  # dashes
        ("(212) 555-0123", "US", "+12125550123"),
        ("1 212 555 0123", "US", "+12125550123"),
        ("011 44 20 7946 0018", "US", "+442079460018"),
        ("  +1 212 555 0199  ", "FR", "+12125550199"),  # surrounding whitespace
        ("01 99 00 12 34", "FR", "+33199001234"),
        ("tel:+442079460018", "GB", "+442079460018"),
        ("+442079460018@pbx.example", "GB", "+442079460018"),
        (
            "\uff10\uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff10\uff11\uff18",
            "GB",
            "+442079460018",
        ),  # full-width
        (
            "\u0660\u0662\u0660\u0667\u0669\u0664\u0666\u0660\u0660\u0661\u0668",
            "GB",
            "+442079460018",
        ),  # Arabic-Indic
        ("+12125550123", "gb", "+12125550123"),  # region case-insensitive
    ],
)
def test_normalize_valid(raw: str, region: str, expected: str) -> None:
    assert normalize(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "anonymous",
        "Anonymous",
        "Restricted",
        "RESTRICTED",
        "private",
        "Unavailable",
        "unknown",
        "",
        "   ",
        None,
        12125550123,  # not a string: the channel var must be text
        "1" * 200,  # 200-digit garbage
        "+" + "9" * 60,
        "abc",
        "1-800-FLOWERS",  # vanity letters are not a caller ID
        "12",
        "+999 123 456",  # no such country code
        "0",
        "+44 20 7946 0018; DROP TABLE customers",
        "\x00\x01\x02",
        "+44 20 7946 0018 ext. 12",
    ],
)
def test_normalize_unknown_caller(raw: object) -> None:
    assert normalize(raw, "GB") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_normalize_never_raises_and_returns_e164_or_none(raw: str) -> None:
    out = normalize(raw, "GB")
    assert out is None or is_e164(out)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"\+44 ?20 ?7946 ?0[0-9]{3}", fullmatch=True))
def test_normalize_is_idempotent_on_uk_drama_range(raw: str) -> None:
    e164 = normalize(raw, "US")
    assert e164 is not None
    assert normalize(e164, "FR") == e164


def test_mask_example_from_spec() -> None:
    assert mask("+442079460034") == "+4420******34"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+12125550123", "+121******23"),
        ("+33199001234", "+3319*****34"),
        (None, "<none>"),
        ("", "<empty>"),
        ("anonymous", "****"),
        ("020 7946 0018", "*********18"),
    ],
)
def test_mask_shapes(number: str | None, expected: str) -> None:
    assert mask(number) == expected


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True))
def test_mask_hides_the_middle_of_any_e164(number: str) -> None:
    masked = mask(number)
    assert len(masked) == len(number)
    assert masked != number
    assert masked.endswith(number[-2:])
    # At most country code (<=3) + 2 + 2 digits are visible.
    assert sum(c.isdigit() for c in masked) <= 7


def test_mask_bounds_garbage_length() -> None:
    assert len(mask("9" * 10_000)) <= 18
    assert mask(object()) is not None  # never raises


def test_a_callback_number_must_be_dialable_as_a_full_number():
    from ivr.crm.phone import dialable
    assert dialable("020 7946 0034", "GB") == "+442079460034"
    assert dialable("+1 415 555 0100", "GB") == "+14155550100"
    assert normalize("0163", "GB") == "+440163"          # fine as a caller ID to look up...
    assert dialable("0163", "GB") is None                # ...not as a number to call back
    assert dialable("+4420794600", "GB") is None
    assert dialable("anonymous", "GB") is None and dialable(None, "GB") is None
