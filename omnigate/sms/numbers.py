"""Phone numbers (E.164 via `phonenumbers`) and SMPP source addresses.

Numbers are normalised once at the door; the result is cached because the same few
recipients and senders recur all day and parsing costs tens of microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

from . import gsm

# SMPP 3.4 §5.2.5 (addr_ton) and §5.2.6 (addr_npi)
TON_INTERNATIONAL = 1
TON_NETWORK_SPECIFIC = 3
TON_ALPHANUMERIC = 5
NPI_UNKNOWN = 0
NPI_ISDN = 1

# TS 23.040 §9.1.2.5: Address-Value is at most 10 octets, i.e. 11 packed septets.
ALPHANUMERIC_MAX = 11
SHORT_CODE_DIGITS = (3, 8)
# E.164 §6.1 allows 15 digits; anything much longer is not a number, and not worth caching.
RAW_MAX = 64

_SEPARATORS = str.maketrans("", "", " \t\u00a0-.()/")
_NUMERIC = re.compile(r"\+?[0-9]+")
_MOBILE = frozenset((PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE))
_WHY_NOT_POSSIBLE = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "no area code",
}
_WHY_NOT_PARSED = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


class NumberError(ValueError):
    """A number or sender that cannot be used; `reason` is one line for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Address:
    """An SMPP address: value with its type of number and numbering plan."""

    value: str  # digits without '+' for numbers, or the alphanumeric text
    ton: int  # 1 international, 3 network-specific (short codes), 5 alphanumeric
    npi: int  # 1 ISDN/E.164, 0 unknown (alphanumeric, short codes)


def _check(raw: str, number: str, region: str | None, mobile_only: bool) -> tuple[bool, str]:
    """(True, E.164) or (False, reason) for one reading of the number."""
    where = f" for region {region}" if region else ""
    try:
        n = phonenumbers.parse(number, region)
    except NumberParseException as e:
        why = _WHY_NOT_PARSED.get(e.error_type, "unparsable")
        return False, f"'{raw}' is not a valid number{where} ({why})"
    # A number is valid exactly when its type is known (libphonenumber's isValidNumber
    # is getNumberType != UNKNOWN for the number's own region): one pattern walk, not two.
    kind = phonenumbers.number_type(n)
    if kind == PhoneNumberType.UNKNOWN:
        why = _WHY_NOT_POSSIBLE.get(phonenumbers.is_possible_number_with_reason(n))
        detail = f" ({why})" if why else ""
        return False, f"'{raw}' is not a valid number{where}{detail}"
    e164 = phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    if mobile_only and kind not in _MOBILE:
        return False, f"'{e164}' is not a mobile number"
    return True, e164


@lru_cache(maxsize=100_000)
def _normalise(raw: str, region: str, mobile_only: bool) -> tuple[bool, str]:
    """Cached outcome, the reason included: bad numbers recur too, and caching the string
    (not the exception) avoids re-raising one instance whose traceback would keep growing."""
    text = raw.strip()
    if not text:
        return False, "empty number"
    international = text.startswith(("+", "00"))
    # '+46 (0)70 ...': the trunk prefix written in brackets after the country code
    digits = (text.replace("(0)", "", 1) if international else text).translate(_SEPARATORS)
    digits = digits[1:] if digits.startswith("+") else digits[2:] if international else digits
    if not (digits.isascii() and digits.isdigit()):
        if any(c.isalpha() for c in digits):
            return False, f"'{text}' contains letters"
        return False, f"'{text}' is not a phone number"
    if international:
        candidates: list[tuple[str, str | None]] = [("+" + digits, None)]
    elif region not in phonenumbers.SUPPORTED_REGIONS:
        return False, f"'{text}' has no country code and region {region!r} is unknown"
    elif digits.startswith("0"):
        candidates = [(digits, region)]
    else:
        # Kannel-style clients send international numbers without '+': '46701234567'.
        # Tried first; the national reading remains for regions without a trunk prefix.
        cc = str(phonenumbers.country_code_for_region(region))
        candidates = [(digits, region)]
        if digits.startswith(cc):
            candidates.insert(0, ("+" + digits, None))
    reason = ""
    for number, reg in candidates:
        ok, result = _check(text, number, reg, mobile_only)
        if ok:
            return True, result
        if not reason.endswith("mobile number"):  # "not mobile" says more than "not valid"
            reason = result
    return False, reason


def normalise_msisdn(raw: str, region: str, *, mobile_only: bool = True) -> str:
    """E.164 with '+' ('+46701234567') of a number written any usual way.

    National numbers are read in `region` (ISO 3166 alpha-2); '00' counts as '+'. With
    `mobile_only`, numbers phonenumbers knows are not mobile (landlines, toll-free) are
    refused. Raises NumberError.
    """
    if len(raw) > RAW_MAX:
        raise NumberError(f"'{raw[:20]}...' is too long for a phone number")
    ok, result = _normalise(raw, region.upper(), mobile_only)
    if not ok:
        raise NumberError(result)
    return result


@lru_cache(maxsize=512)
def _has_trunk_prefix(region: str) -> bool:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    return bool(metadata and metadata.national_prefix)


def parse_sender(raw: str, region: str) -> Address:
    """The originator shown on the phone, as an SMPP address.

    - '+', '00' or national '0' numbers: E.164 digits, TON 1 NPI 1 (any valid type, since
      landlines and service numbers may send too).
    - Bare 3-8 digits: a short code, TON 3 NPI 0; but in regions without a trunk prefix
      (NO, DK) a valid national number there wins. Longer bare digits: a number as above.
    - Otherwise alphanumeric: GSM 03.38 characters only, at most 11 septets
      (TS 23.040 §9.1.2.5), TON 5 NPI 0.
    """
    s = raw.strip()
    if not s:
        raise NumberError("sender is empty")
    compact = s.translate(_SEPARATORS)
    if _NUMERIC.fullmatch(compact):
        low, high = SHORT_CODE_DIGITS
        short = low <= len(compact) <= high and not compact.startswith(("+", "0"))
        # Where national numbers begin with a trunk prefix (SE '0', US '1'), bare short
        # digit strings are short codes; elsewhere (NO, DK: '41234567') try a number first.
        if short and _has_trunk_prefix(region):
            return Address(compact, TON_NETWORK_SPECIFIC, NPI_UNKNOWN)
        try:
            e164 = normalise_msisdn(s, region, mobile_only=False)
        except NumberError:
            if short:
                return Address(compact, TON_NETWORK_SPECIFIC, NPI_UNKNOWN)
            if len(compact) < low:
                raise NumberError(
                    f"sender '{s}' is too short: short codes have {low}-{high} digits"
                ) from None
            raise
        return Address(e164[1:], TON_INTERNATIONAL, NPI_ISDN)
    if not gsm.is_gsm(s):
        bad = next(c for c in s if c not in gsm.GSM_CHARS)
        raise NumberError(
            f"alphanumeric sender '{s}' has {bad!r}, which is not in the GSM 03.38 alphabet"
        )
    if len(s) > ALPHANUMERIC_MAX:
        raise NumberError(
            f"alphanumeric sender '{s}' is {len(s)} characters, at most {ALPHANUMERIC_MAX} allowed"
        )
    septets = gsm.septet_count(s)
    if septets > ALPHANUMERIC_MAX:
        raise NumberError(
            f"alphanumeric sender '{s}' takes {septets} septets, at most {ALPHANUMERIC_MAX}"
            " allowed (€ [ ] { } ~ ^ \\ | count two)"
        )
    return Address(s, TON_ALPHANUMERIC, NPI_UNKNOWN)
