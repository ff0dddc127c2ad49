"""The account checks as pure functions: each refusal with its code, footers, prices,
quotas across midnight and month ends, prepaid balance and credit."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from omnigate.accounts.policy import (
    Calendar,
    Prices,
    Profile,
    Usage,
    admit,
    charge,
    release,
    reserve,
)
from omnigate.config import AccountConfig
from omnigate.model import Origin, SubmitError, SubmitRequest
from omnigate.routing.ratelimit import TokenBucket

UTC_CAL = Calendar("UTC")
PRICES = Prices({"+46": 0.05, "+467": 0.04, "+4670": 0.03}, default=0.10)


def profile(**settings: object) -> Profile:
    return Profile(AccountConfig.model_validate({"name": "acme", **settings}))


def request(**fields: object) -> SubmitRequest:
    return SubmitRequest(**{"to": ["+46701234567"], "text": "hello", "origin": Origin.HTTP,
                            "account": "acme", **fields})


def refusal(call: object, *args: object) -> SubmitError:
    with pytest.raises(SubmitError) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def at(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


# -- admit: who and as whom -------------------------------------------------------

def test_admit_refusals_each_have_their_code() -> None:
    cases = [
        (profile(enabled=False), request(), "account", "forbidden"),
        (profile(allow=["10.0.0.0/8"]), request(client="192.0.2.1"), "client", "forbidden"),
        (profile(mail_senders=["*@acme.example"]), request(mail_from="eve@evil.example"),
         "mail_from", "forbidden"),
        (profile(senders=["ACME"]), request(sender="EVIL"), "from", "forbidden"),
    ]
    for prof, req, field, kind in cases:
        e = refusal(admit, prof, req)
        assert (e.field, e.kind) == (field, kind), e
        assert "acme" in e.reason


def test_admit_passes_what_is_allowed() -> None:
    prof = profile(allow=["10.0.0.0/8"], mail_senders=["*@acme.example"],
                   senders=["ACME", "+46701111111"])
    req = request(client="10.1.2.3", mail_from="Ops@ACME.example", sender="46701111111")
    assert admit(prof, req) is req  # numeric sender with or without '+'
    # no client address (spool, SQL): the network check does not apply
    assert admit(prof, request(client=None)).account == "acme"


def test_default_sender_and_footer_are_applied() -> None:
    prof = profile(senders=["ACME", "HELP"], default_sender="ACME", footer="\n-- ACME AB")
    out = admit(prof, request(text="hi"))
    assert (out.sender, out.text) == ("ACME", "hi\n-- ACME AB")
    assert admit(prof, request(text="hi", sender="HELP")).sender == "HELP"


# -- charge: how much ---------------------------------------------------------------

def test_prices_longest_prefix_wins() -> None:
    assert PRICES.per_part("+46701234567") == 0.03
    assert PRICES.per_part("+46721234567") == 0.04
    assert PRICES.per_part("+46812345678") == 0.05
    assert PRICES.per_part("+4915112345678") == 0.10


def test_charge_counts_parts_and_amount_per_message() -> None:
    prof, usage = profile(), Usage()
    c = charge(prof, usage, [("+46701234567", 2), ("+4915112345678", 3)], PRICES, 0.0,
               UTC_CAL.keys(0.0))
    assert (c.messages, c.parts, c.amount) == (2, 5, 0.36)
    assert c.each == ((2, 0.06), (3, 0.3))
    assert usage.day_parts == 0  # charge alone reserves nothing


def test_destinations_allowlist() -> None:
    prof = profile(destinations=["+467"])
    charge(prof, Usage(), [("+46701234567", 1)], PRICES, 0.0, UTC_CAL.keys(0.0))
    e = refusal(charge, prof, Usage(), [("+46701234567", 1), ("+4681234567", 1)], PRICES, 0.0,
                UTC_CAL.keys(0.0))
    assert (e.field, e.kind) == ("to", "forbidden") and "+4681234567" in e.reason


def test_daily_quota_boundary_at_midnight() -> None:
    prof = profile(daily_quota=10)
    usage = Usage()
    evening = at("2026-11-22T23:59:59")
    keys = UTC_CAL.keys(evening)
    reserve(prof, usage, charge(prof, usage, [("+46701234567", 10)], PRICES, evening, keys))
    e = refusal(charge, prof, usage, [("+46701234567", 1)], PRICES, evening, keys)
    assert (e.field, e.kind) == ("daily_quota", "quota") and "10 of 10" in e.reason
    midnight = at("2026-11-23T00:00:00")
    c = charge(prof, usage, [("+46701234567", 10)], PRICES, midnight, UTC_CAL.keys(midnight))
    assert c.parts == 10 and usage.day == "2026-11-23" and usage.day_parts == 0


def test_daily_quota_follows_the_billing_time_zone() -> None:
    cal = Calendar("Europe/Stockholm")
    # 23:30 UTC is already the next day in Stockholm (UTC+1 in November)
    assert cal.keys(at("2026-11-22T23:30:00"))[0] == "2026-11-23"
    assert cal.keys(at("2026-11-22T22:59:59"))[0] == "2026-11-22"
    # a 23-hour day (DST starts 2026-03-29): the next key at local midnight, not after 24 h
    assert cal.keys(at("2026-03-29T23:59:59", "Europe/Stockholm"))[0] == "2026-03-29"
    assert cal.keys(at("2026-03-30T00:00:00", "Europe/Stockholm"))[0] == "2026-03-30"


def test_monthly_quota_resets_with_the_month() -> None:
    prof = profile(monthly_quota=5)
    usage = Usage()
    end = at("2026-11-30T12:00:00")
    reserve(prof, usage, charge(prof, usage, [("+46701234567", 5)], PRICES, end,
                                UTC_CAL.keys(end)))
    e = refusal(charge, prof, usage, [("+46701234567", 1)], PRICES, end, UTC_CAL.keys(end))
    assert (e.field, e.kind) == ("monthly_quota", "quota")
    first = at("2026-12-01T00:00:00")
    assert charge(prof, usage, [("+46701234567", 5)], PRICES, first, UTC_CAL.keys(first)).parts == 5


def test_prepaid_balance_with_credit_limit_and_release() -> None:
    prof = profile(billing="prepaid", credit_limit=0.05)
    usage = Usage(balance=0.10)
    keys = UTC_CAL.keys(0.0)
    c = charge(prof, usage, [("+46812345678", 3)], PRICES, 0.0, keys)  # 0.15 = 0.10 + credit
    reserve(prof, usage, c)
    assert usage.balance == pytest.approx(-0.05)
    e = refusal(charge, prof, usage, [("+46812345678", 1)], PRICES, 0.0, keys)
    assert (e.field, e.kind) == ("balance", "payment") and "-0.05" in e.reason
    release(prof, usage, c)
    assert usage.balance == pytest.approx(0.10) and usage.day_parts == 0


def test_postpaid_has_no_balance_check() -> None:
    prof = profile()
    c = charge(prof, Usage(balance=-1000.0), [("+46812345678", 9)], PRICES, 0.0,
               UTC_CAL.keys(0.0))
    assert c.amount == 0.45


def test_rate_at_the_door() -> None:
    prof = profile(submit_rate=2)
    usage = Usage(bucket=TokenBucket(2, burst=2))
    keys = UTC_CAL.keys(100.0)
    for _ in range(2):
        reserve(prof, usage, charge(prof, usage, [("+46701234567", 1)], PRICES, 100.0, keys))
    e = refusal(charge, prof, usage, [("+46701234567", 1)], PRICES, 100.0, keys)
    assert (e.field, e.kind) == ("rate", "quota")
    assert charge(prof, usage, [("+46701234567", 1)], PRICES, 100.5, keys).messages == 1
