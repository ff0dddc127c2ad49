"""The HTTP link against the provider simulator over loopback (issue 8): each profile,
long and UCS-2 texts, answers classified, Retry-After, auth styles, pool limit, batching.
What every link does (state, exactly-once, stop) is in test_contract.py."""

from __future__ import annotations

import time
from typing import Any

import pytest

from omnigate.carriers.base import LinkState
from omnigate.carriers.http import HttpLink
from omnigate.carriers.http.link import retry_after
from omnigate.model import FailureKind, Status
from omnigate.sim.httpprovider import HttpProviderSimulator
from omnigate.sms.segment import concat_udh
from tests.support import LONG_GSM, LONG_UCS2, LinkFactory, link_fixture, parts, poll, sim_fixture

TOKEN = "hook-secret"
GENERIC = {"name": "prov", "profile": "generic-json", "url": "http://provider.invalid/send",
           "probe_url": "http://provider.invalid/status", "username": "omni",
           "password": "secret", "listen": "127.0.0.1:0", "hook_token": TOKEN}

sim = sim_fixture(HttpProviderSimulator, user="omni", password="secret")
make_link = link_fixture(HttpLink, **GENERIC)


def recipients(n: int, text: str = "same text") -> list[Any]:
    return [p for i in range(n)
            for p in parts(text, message_id=i + 1, recipient=f"4670123456{i}")]


# --- profiles ------------------------------------------------------------------------


async def test_generic_json_carries_the_message_fields(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    [part] = parts("Hej {du}", flash=True)
    link.submit(part)
    await rec.until(lambda: rec.sent)
    [s] = sim.submits
    assert (s.destination, s.source, s.text, s.flash) == ("46701234567", "Omnigate",
                                                         "Hej {du}", True)
    assert s.dlr_url == link.describe()["dlr_url"] and f"token={TOKEN}" in s.dlr_url
    assert rec.sent == [(part, s.id)]
    _, path, headers = sim.seen[-1]
    assert path == "/send" and headers["Authorization"].startswith("Basic ")


async def test_long_message_sent_whole_each_part_reported_and_delivered(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    sim.dlr = True
    link, rec = await make_link(sim)
    long = parts(LONG_GSM, message_id=5)
    assert len(long) == 3
    for p in long:
        link.submit(p)
    await rec.until(lambda: len(rec.reports) == 3)
    [s] = sim.submits  # one request: the provider splits
    assert s.text == LONG_GSM
    assert rec.sent == [(p, f"{s.id}#{p.seq}") for p in long]
    assert sorted(r.carrier_ref for r in rec.reports) == [f"{s.id}#{i}" for i in (1, 2, 3)]
    assert {r.status for r in rec.reports} == {Status.DELIVERED}


async def test_kannel_sends_part_by_part_with_udh_and_reports_each(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    sim.dlr = True
    link, rec = await make_link(sim, profile="kannel", probe_url=None,
                                url="http://kannel.invalid/cgi-bin/sendsms")
    long = parts(LONG_UCS2, message_id=7, ref=42)
    for p in long:
        link.submit(p)
    await rec.until(lambda: len(rec.reports) == len(long))
    got = sorted(sim.submits, key=lambda s: s.udh)  # sent side by side: any order
    assert [s.coding for s in got] == [2] * len(long)
    assert [s.udh for s in got] == [concat_udh(42, len(long), p.seq).hex() for p in long]
    assert "".join(s.text for s in got) == LONG_UCS2
    assert rec.sent == [(p, f"7.{p.seq}") for p in long]
    assert sorted(r.carrier_ref for r in rec.reports) == [f"7.{p.seq}" for p in long]
    _, path, _ = sim.seen[-2]
    assert "username=omni" in path and "password=secret" in path  # Kannel's own fields


async def test_websms_batches_recipients_of_one_text(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    sim.dlr, sim.dlr_status = True, "undelivered"
    link, rec = await make_link(sim, profile="websms", username=None, password=None,
                                token="secret", batch=3, probe_url=None,
                                url="http://websms.invalid/rest/smsmessaging/text")
    submitted = recipients(5) + parts("other text", message_id=9, recipient="46709999999")
    for p in submitted:
        link.submit(p)
    await rec.until(lambda: len(rec.reports) == 6)
    transfers = [s.id.split(":")[0] for s in sim.submits]
    assert [transfers.count(t) for t in dict.fromkeys(transfers)] == [3, 2, 1]
    assert sorted(ref for _, ref in rec.sent) == sorted(s.id for s in sim.submits)
    assert {r.status for r in rec.reports} == {Status.UNDELIVERED}
    assert sorted(r.carrier_ref for r in rec.reports) == sorted(s.id for s in sim.submits)
    assert sim.seen[-1][2]["Authorization"] == "Bearer secret"


# --- answers ---------------------------------------------------------------------------


async def test_4xx_is_permanent_5xx_temporary_with_the_providers_words(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    sim.fail_every = 1
    [bad] = parts("x", message_id=1)
    link.submit(bad)
    await rec.until(lambda: rec.failed)
    sim.fail_every, sim.error_every = 0, 1
    [busy] = parts("y", message_id=2)
    link.submit(busy)
    await rec.until(lambda: len(rec.failed) == 2)
    (p1, k1, why1), (p2, k2, why2) = rec.failed
    assert (p1, k1) == (bad, FailureKind.PERMANENT) and "HTTP 400" in why1
    assert "invalid destination address" in why1
    assert (p2, k2) == (busy, FailureKind.TEMPORARY) and "HTTP 500" in why2
    assert link.state is LinkState.UP


async def test_429_pauses_for_retry_after(sim: HttpProviderSimulator,
                                          make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    sim.throttle_every, sim.retry_after = 1, 0.4
    [p] = parts("slow down")
    link.submit(p)
    await rec.until(lambda: rec.failed)
    at = time.monotonic()
    assert rec.failed[0][1] is FailureKind.THROTTLED and "retry after 0.4" in rec.failed[0][2]
    assert link.capacity() == 0 and link.describe()["throttled"]
    await poll(lambda: link.capacity() > 0)
    assert time.monotonic() - at >= 0.3
    sim.throttle_every = 0
    link.submit(p)
    await rec.until(lambda: rec.sent)


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("7", 1.0) == 7.0
    assert retry_after("0.5", 1.0) == 0.5  # not RFC 9110, but providers send it
    assert retry_after(None, 1.5) == 1.5
    assert retry_after("soon", 1.5) == 1.5
    in_ten = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))
    assert 8.0 <= retry_after(in_ten, 1.0) <= 10.0
    assert retry_after("999999", 1.0) == 3600.0


async def test_success_test_and_carrier_id_from_regex(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim, profile="generic", json_body={"to": "{to}", "text": "{text}"},
                                method="POST", success_regex=r'"id"', id_regex=r'"id":\s*"(\w+)"')
    [p] = parts("regex")
    link.submit(p)
    await rec.until(lambda: rec.sent)
    assert rec.sent == [(p, sim.submits[0].id)]
    link2, rec2 = await make_link(sim, profile="generic", json_body={"to": "{to}", "text": "{text}"},
                                  success_pointer="/status", success_values=["queued"])
    link2.submit(p)
    await rec2.until(lambda: rec2.failed)
    assert rec2.failed[0][1] is FailureKind.PERMANENT and "refused by" in rec2.failed[0][2]


async def test_timeout_is_temporary_and_down_only_after_down_after(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim, response_timeout=0.3, down_after=2)
    sim.no_response = True
    [first] = parts("a", message_id=1)
    link.submit(first)
    await rec.until(lambda: rec.failed)
    assert rec.failed[0][:2] == (first, FailureKind.TEMPORARY) and "no answer" in rec.failed[0][2]
    assert link.state is LinkState.UP  # one timeout is not an outage
    [second] = parts("b", message_id=2)
    link.submit(second)
    await rec.until(lambda: LinkState.DOWN in rec.states)
    sim.no_response = False
    await rec.until(lambda: rec.states[-1] is LinkState.UP)


async def test_refused_credentials_take_the_link_down_until_fixed(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    sim.password = "rotated"
    [p] = parts("who am I")
    link.submit(p)
    await rec.until(lambda: rec.failed and LinkState.DOWN in rec.states)
    assert rec.failed[0][1] is FailureKind.TEMPORARY
    assert "credentials refused" in link.describe()["last_error"]
    sim.password = "secret"
    await rec.until(lambda: rec.states[-1] is LinkState.UP, timeout=10)


# --- auth styles and the pool --------------------------------------------------------------


@pytest.mark.parametrize(("auth", "where"), [
    ({"token": "t0k"}, ("header", "Authorization", "Bearer t0k")),
    ({"api_key": "k3y", "api_key_header": "X-Api-Key"}, ("header", "X-Api-Key", "k3y")),
    ({"api_key": "k3y", "api_key_query": "apikey"}, ("query", "apikey=k3y", None)),
    ({"username": "u", "password": "p"}, ("header", "Authorization", "Basic dTpw")),
])
async def test_auth_styles(auth: dict[str, Any], where: tuple[str, str, str | None],
                           make_link: LinkFactory) -> None:
    async with HttpProviderSimulator() as open_sim:  # takes anything; we look at what came
        fields = {"username": None, "password": None, **auth}
        link, rec = await make_link(open_sim, **fields)
        [p] = parts("auth")
        link.submit(p)
        await rec.until(lambda: rec.sent)
        _, path, headers = open_sim.seen[-1]
        kind, name, value = where
        if kind == "header":
            assert headers[name] == value
        else:
            assert name in path


async def test_pool_keeps_window_requests_in_flight(
        sim: HttpProviderSimulator, make_link: LinkFactory) -> None:
    sim.response_delay = 0.1
    link, rec = await make_link(sim, window=2, queue=10)
    submitted = recipients(6)
    for p in submitted:
        link.submit(p)
    assert link.in_flight == 6 and link.capacity() == 6  # 2 x 1 + 10 - 6
    await rec.until(lambda: len(rec.sent) == 6)
    assert sim.peak_concurrent == 2


async def test_max_rate_spaces_requests(sim: HttpProviderSimulator,
                                        make_link: LinkFactory) -> None:
    link, rec = await make_link(sim, max_rate=20)
    at = time.monotonic()
    for p in recipients(6):
        link.submit(p)
    await rec.until(lambda: len(rec.sent) == 6)
    assert time.monotonic() - at >= 0.2  # 6 parts at 20/s with a burst of 2
