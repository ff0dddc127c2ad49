"""End to end over a GSM modem: real HTTP client -> gateway -> store -> modem link -> modem
simulator on loopback (issue 7), on SQLite and PostgreSQL; and coverage loss: fallback to
the next tier, an alarm mail, and the all-clear when the modem registers again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.config import Config
from omnigate.sim.modem import ModemSimulator
from omnigate.sim.smpp import SmscSimulator
from tests.delivery.test_email import Sink
from tests.support import FINAL, make_config, make_link_config, sim_fixture, wait_inbound, wait_status

PIN = "2468"
NUMBER = "46700000001"


def modem_entry(port: int, **link: Any) -> dict[str, Any]:
    return {"name": "gsm1", "type": "modem", "hosts": [f"127.0.0.1:{port}"], "pin": PIN,
            "poll_interval": 0.2, "register_timeout": 0.5, "reconnect_min": 0.1,
            "reconnect_max": 0.3, **link}


def modem_config(store_url: str, port: int, tmp_path: Path) -> Config:
    return make_link_config(store_url, tmp_path, modem_entry(port))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


modem = sim_fixture(ModemSimulator, password=PIN, number=NUMBER, dlr=True)


async def test_send_over_a_modem_is_delivered_and_mo_stored(
        store_url: str, modem: ModemSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(modem_config(store_url, modem.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    short, long_gsm, emoji = "Larm {pump 3}", "Larm: " + "pumpstation [3] " * 15, "Hej 😀 " * 14
    ids = []
    for text in (short, long_gsm, emoji):
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": ["+46701234567"], "text": text}) as resp:
            assert resp.status == 202, await resp.text()
            ids.append((await resp.json())["messages"][0]["id"])
    for id in ids:
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "delivered", msg
        assert [e["status"] for e in msg["events"]] == ["queued", "sent", "delivered"]
        assert msg["events"][1]["link"] == "gsm1"
    assert sorted(t for _, _, t in modem.messages()) == sorted([short, long_gsm, emoji])
    async with http.get(f"{base}/api/v1/links") as resp:
        [link] = (await resp.json())["links"]
    assert (link["type"], link["state"], link["number"]) == ("modem", "up", NUMBER)
    assert (link["signal"], link["signal_dbm"], link["operator"]) == (20, -73, "Omnisim")
    async with http.get(f"{base}/metrics") as resp:
        assert 'omnigate_link_signal_dbm{link="gsm1"} -73.0' in await resp.text()

    await modem.inject_mo("+46709876543", NUMBER, "Kvitterat: " + "ok " * 60)
    rows = await wait_inbound(gw)
    assert {(r.sender, r.recipient, r.link) for r in rows} == {("46709876543", NUMBER, "gsm1")}
    assert modem.violations == []


async def test_coverage_loss_falls_back_and_mails_alarms(
        modem: ModemSimulator, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    sink = Sink()
    await sink.start()
    try:
        config = make_config(
            f"sqlite+aiosqlite:///{tmp_path}/omnigate.db", smsc.port, tmp_path,
            links=[modem_entry(modem.port),
                   {"name": "smsc1", "type": "smpp", "hosts": [f"127.0.0.1:{smsc.port}"],
                    "system_id": "omnigate", "password": "secret", "reconnect_min": 0.1,
                    "reconnect_max": 0.5}],
            routes=[{"tiers": [["gsm1"], ["smsc1"]]}],
            mail={"relay": f"127.0.0.1:{sink.port}", "from": "sms@example.com",
                  "error_address": "noc@example.com", "retry_initial": 0.05})
        gw = await gateway_factory(config)
        base = f"http://127.0.0.1:{gw.http_port}"

        async def send(text: str) -> dict[str, Any]:
            async with http.get(f"{base}/send", params={"numbers": "0701234567",
                                                        "text": text}) as resp:
                id = int((await resp.text()).split()[1])
            return await wait_status(http, base, id, FINAL)

        assert (await send("via the modem"))["events"][1]["link"] == "gsm1"
        modem.set_faults(registration=2)  # the modem loses the network
        await sink.wait_for(1)
        assert (await send("via the fallback"))["events"][1]["link"] == "smsc1"
        modem.set_faults(registration=1)
        await sink.wait_for(2)
    finally:
        await sink.stop()
    assert [(r, m["Subject"]) for _, r, m in sink.mails] == [
        (["noc@example.com"], "omnigate: link gsm1 down"),
        (["noc@example.com"], "omnigate: link gsm1 up")]
    assert [s.text for s in smsc.submits] == ["via the fallback"]


async def test_built_in_modem_simulator(tmp_path: Path, gateway_factory: Callable[..., Any],
                                        http: aiohttp.ClientSession,
                                        unused_tcp_port: int) -> None:
    """`[[simulators]] type = "modem"` starts a modem inside the daemon; `password` is its PIN."""
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path}/o.db", unused_tcp_port, tmp_path,
        simulators=[{"type": "modem", "listen": f"127.0.0.1:{unused_tcp_port}",
                     "password": PIN, "dlr": True}],
        links=[modem_entry(unused_tcp_port, name="smsc1")])
    gw = await gateway_factory(config)
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={"numbers": "0701234567", "text": "hej"}) as resp:
        id = int((await resp.text()).split()[1])
    assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"
    assert gw.simulators[0].submit_count == 1
