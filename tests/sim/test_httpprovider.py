"""The HTTP provider simulator's own behaviour (issue 8): credentials per dialect,
faults set at run time, MO without a target. Real aiohttp client on loopback."""

from __future__ import annotations

import aiohttp
import pytest

from omnigate.sim.base import SimulatorError
from omnigate.sim.httpprovider import HttpProviderSimulator
from tests.support import sim_fixture

sim = sim_fixture(HttpProviderSimulator, user="u", password="p")


async def test_each_dialect_checks_its_credentials(sim: HttpProviderSimulator) -> None:
    base = f"http://127.0.0.1:{sim.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/cgi-bin/sendsms", params={
                "username": "u", "password": "wrong", "to": "+4670", "text": "x"}) as r:
            assert r.status == 403
        async with http.get(f"{base}/cgi-bin/sendsms", params={
                "username": "u", "password": "p", "to": "+46701234567", "text": "x"}) as r:
            assert (r.status, await r.text()) == (202, "0: Accepted for delivery")
        async with http.post(f"{base}/rest/smsmessaging/text", json={
                "recipientAddressList": ["46701234567"], "messageContent": "x"}) as r:
            assert r.status == 401 and (await r.json())["statusCode"] == 4001
        async with http.post(f"{base}/rest/smsmessaging/text", headers={
                "Authorization": "Bearer p"}, json={"recipientAddressList": ["46701234568"],
                                                     "messageContent": "y"}) as r:
            assert (await r.json())["statusCode"] == 2000
        async with http.post(f"{base}/send", headers={"Authorization": "Basic dTpw"},
                             json={"text": "no recipient"}) as r:
            assert r.status == 400
    assert [(s.dialect, s.destination) for s in sim.submits] == [
        ("kannel", "46701234567"), ("websms", "46701234568")]


def test_faults_are_checked() -> None:
    s = HttpProviderSimulator()
    s.set_faults(throttle_every=2, retry_after=0.5, no_response=True, dlr_status="expired")
    assert s.faults()["throttle_every"] == 2 and s.no_response and s.dlr_status == "expired"
    for bad in ({"nope": 1}, {"fail_every": -1}, {"no_response": 1}, {"dlr_status": "lost"}):
        with pytest.raises(ValueError):
            s.set_faults(**bad)


async def test_mo_needs_a_target(sim: HttpProviderSimulator) -> None:
    with pytest.raises(SimulatorError, match="no mo_url"):
        await sim.inject_mo("46701234567", "4670000", "hi")
