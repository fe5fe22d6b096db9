from ivr.logsafe import mask_number


def test_phone_numbers_are_masked_keeping_only_country_code_and_last_two():
    assert mask_number("+442079460123") == "+44********23"
    assert mask_number("2079460123") == "20******23"
    assert "946" not in mask_number("+442079460123")


def test_short_empty_and_anonymous():
    assert mask_number("") == "<none>" and mask_number(None) == "<none>"
    assert mask_number("123") == "***"
    assert mask_number("anonymous") == "*********"


def test_very_long_caller_id_is_bounded():
    assert len(mask_number("1" * 5000)) <= 64
