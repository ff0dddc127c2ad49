"""Number normalisation and sender addresses."""

import pickle

import pytest

from omnigate.sms import numbers
from omnigate.sms.numbers import Address, NumberError, normalise_msisdn, parse_sender


@pytest.mark.parametrize(
    "raw",
    [
        "0701234567", "+46701234567", "0046701234567", "46701234567", "070-123 45 67",
        "(070) 123 45 67", "070.123.45.67", " 0701234567 ", "+46 70 123 45 67",
        "+46 (0)70 123 45 67", "00 46 70-123 45 67", "070/1234567",
    ],
)
def test_swedish_spellings_are_one_number(raw):
    assert normalise_msisdn(raw, "SE") == "+46701234567"


def test_region_is_case_insensitive():
    assert normalise_msisdn("0701234567", "se") == "+46701234567"


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("07400 123456", "GB", "+447400123456"),
        ("+1 (201) 555-0123", "US", "+12015550123"),
        ("12015550123", "US", "+12015550123"),  # bare, with country code
        ("2015550123", "US", "+12015550123"),
        ("41234567", "NO", "+4741234567"),  # no trunk prefix in Norway
        ("+46701234567", "GB", "+46701234567"),  # international ignores region
    ],
)
def test_other_regions(raw, region, e164):
    assert normalise_msisdn(raw, region) == e164


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty number"),
        ("   ", "empty number"),
        ("07O1234567", "'07O1234567' contains letters"),
        ("0701-CALL-ME", "'0701-CALL-ME' contains letters"),
        ("0701", "'0701' is not a valid number for region SE (too short)"),
        (" 0701 ", "'0701' is not a valid number for region SE (too short)"),
        ("+46 (0)8 123 45 67", "'+4681234567' is not a mobile number"),
        ("4670", "'4670' is not a valid number for region SE (too short)"),
        ("07012345678901234", "'07012345678901234' is not a valid number for region SE"),
        ("+999 123 456", "'+999 123 456' is not a valid number (unknown country code)"),
        ("+4681234567", "'+4681234567' is not a mobile number"),
        ("08-123 456 78", "'+46812345678' is not a mobile number"),
        ("4681234567", "'+4681234567' is not a mobile number"),
        ("020 123 456", "'+4620123456' is not a mobile number"),  # toll-free
        ("+", "'+' is not a phone number"),
        ("070#1234567", "'070#1234567' is not a phone number"),
        ("٠٧٠١٢٣٤٥٦٧", "'٠٧٠١٢٣٤٥٦٧' is not a phone number"),  # Arabic-Indic digits
    ],
)
def test_rejections_name_the_reason(raw, reason):
    with pytest.raises(NumberError) as e:
        normalise_msisdn(raw, "SE")
    assert e.value.reason.startswith(reason)
    assert str(e.value) == e.value.reason
    assert isinstance(e.value, ValueError)


def test_landlines_pass_when_not_mobile_only():
    assert normalise_msisdn("+4681234567", "SE", mobile_only=False) == "+4681234567"
    assert normalise_msisdn("08-123 456 78", "SE", mobile_only=False) == "+46812345678"


def test_unknown_region_only_matters_for_national_numbers():
    with pytest.raises(NumberError, match="region 'XX' is unknown"):
        normalise_msisdn("0701234567", "XX")
    assert normalise_msisdn("+46701234567", "XX") == "+46701234567"


def test_absurdly_long_input_is_refused_before_the_cache():
    before = numbers._normalise.cache_info().currsize
    with pytest.raises(NumberError, match="too long for a phone number"):
        normalise_msisdn("1" * 10_000, "SE")
    assert numbers._normalise.cache_info().currsize == before


def test_results_and_rejections_are_cached():
    raw = "070 765 43 21"
    normalise_msisdn(raw, "SE")
    hits = numbers._normalise.cache_info().hits
    assert normalise_msisdn(raw, "SE") == "+46707654321"
    assert numbers._normalise.cache_info().hits == hits + 1
    errors = []
    for _ in range(2):
        with pytest.raises(NumberError) as e:
            normalise_msisdn("07x", "SE")
        errors.append(e.value)
    assert errors[0] is not errors[1]  # a fresh exception each time, same reason
    assert errors[0].reason == errors[1].reason
    assert numbers._normalise.cache_info().maxsize == 100_000


def test_number_error_pickles():
    e = pickle.loads(pickle.dumps(NumberError("'1' is not a valid number")))
    assert e.reason == "'1' is not a valid number"


# --- senders --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("+46701234567", Address("46701234567", 1, 1)),
        ("0046701234567", Address("46701234567", 1, 1)),
        ("070-123 45 67", Address("46701234567", 1, 1)),
        ("46701234567", Address("46701234567", 1, 1)),
        ("08-123 456 78", Address("46812345678", 1, 1)),  # landlines may send
        ("020 123 456", Address("4620123456", 1, 1)),
        ("72000", Address("72000", 3, 0)),  # short code
        ("123", Address("123", 3, 0)),
        ("12345678", Address("12345678", 3, 0)),
        ("Omnigate", Address("Omnigate", 5, 0)),
        (" ACME Shop ", Address("ACME Shop", 5, 0)),
        ("ABCDEFGHIJK", Address("ABCDEFGHIJK", 5, 0)),  # 11: the limit
        ("Café&Co", Address("Café&Co", 5, 0)),
        ("Shop€", Address("Shop€", 5, 0)),
        ("€€€€€a", Address("€€€€€a", 5, 0)),  # 11 septets
        ("Info-24", Address("Info-24", 5, 0)),
    ],
)
def test_parse_sender(raw, address):
    assert parse_sender(raw, "SE") == address


def test_sender_valid_in_region_beats_short_code():
    assert parse_sender("41234567", "NO") == Address("4741234567", 1, 1)
    assert parse_sender("2222", "NO") == Address("2222", 3, 0)
    # SE numbers are written with the trunk '0', so bare 8 digits are a short code there.
    assert parse_sender("12345678", "SE") == Address("12345678", 3, 0)
    assert parse_sender("12345678", "se") == Address("12345678", 3, 0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "sender is empty"),
        ("  ", "sender is empty"),
        ("ABCDEFGHIJKL", "alphanumeric sender 'ABCDEFGHIJKL' is 12 characters, at most 11"),
        ("€€€€€€", "alphanumeric sender '€€€€€€' takes 12 septets, at most 11 allowed"),
        ("Кафе", "alphanumeric sender 'Кафе' has 'К', which is not in the GSM 03.38"),
        ("ça va", "alphanumeric sender 'ça va' has 'ç'"),
        ("12", "sender '12' is too short: short codes have 3-8 digits"),
        ("999999999", "'999999999' is not a valid number for region SE"),
        ("+4670", "'+4670' is not a valid number"),
        ("0701", "'0701' is not a valid number for region SE"),
    ],
)
def test_parse_sender_rejections(raw, reason):
    with pytest.raises(NumberError) as e:
        parse_sender(raw, "SE")
    assert e.value.reason.startswith(reason)


def test_address_is_frozen_and_hashable():
    a = Address("123", 3, 0)
    assert {a, Address("123", 3, 0)} == {a}
    with pytest.raises(AttributeError):
        a.ton = 1


def test_validity_agrees_with_phonenumbers_is_valid_number() -> None:
    """normalise_msisdn decides validity by number type alone; it must agree with the library."""
    import random

    import phonenumbers

    rng = random.Random(7)
    prefixes = ["070", "071", "073", "076", "079", "08", "031", "+1", "+44", "+49", "+358", "+47"]
    checked = 0
    for _ in range(2000):
        raw = rng.choice(prefixes) + str(rng.randrange(10 ** rng.randrange(3, 10)))
        try:
            parsed = phonenumbers.parse(raw, "SE")
        except phonenumbers.NumberParseException:
            continue
        try:
            normalise_msisdn(raw, "SE", mobile_only=False)
            ours = True
        except NumberError:
            ours = False
        assert ours == phonenumbers.is_valid_number(parsed), raw
        checked += 1
    assert checked > 1000
