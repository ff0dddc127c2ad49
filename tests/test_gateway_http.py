"""End to end over HTTP links (issue 8): real HTTP client -> gateway -> store -> HTTP link
-> provider simulator, delivery reports and MO coming back as callbacks to the gateway's
/hooks/; and two gateways chained with the `omnigate` profile. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.api.auth import hash_secret
from omnigate.config import Config
from omnigate.sim.httpprovider import HttpProviderSimulator
from tests.support import (
    FINAL,
    LONG_GSM,
    LONG_UCS2,
    closed_port,
    make_config,
    poll,
    sim_fixture,
    wait_inbound,
    wait_status,
)

TOKEN = "hook-secret"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


provider = sim_fixture(HttpProviderSimulator, password="api-token", dlr=True)


def gateway_config(store_url: str, tmp_path: Path, port: int, entry: dict[str, Any],
                   **overrides: Any) -> Config:
    """A gateway on a known HTTP port (callbacks are addressed to it) with this link."""
    link = {"name": "prov", "type": "http", "reconnect_min": 0.1, "reconnect_max": 0.5,
            "callback_base": f"http://127.0.0.1:{port}", "hook_token": TOKEN, **entry}
    return make_config(store_url, 0, tmp_path, links=[link],
                       routes=[{"tiers": [[link["name"]]]}],
                       http={"listen": f"127.0.0.1:{port}"}, **overrides)


def websms(sim: HttpProviderSimulator) -> dict[str, Any]:
    return {"profile": "websms", "token": "api-token",
            "url": f"http://127.0.0.1:{sim.port}/rest/smsmessaging/text"}


async def post(http: aiohttp.ClientSession, base: str, to: str, text: str) -> int:
    async with http.post(f"{base}/api/v1/messages", json={"to": to, "text": text}) as resp:
        assert resp.status == 202, await resp.text()
        return int((await resp.json())["messages"][0]["id"])


async def test_websms_sent_and_delivered_by_callback(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    port = closed_port()
    gw = await gateway_factory(gateway_config(store_url, tmp_path, port, websms(provider)))
    base = f"http://127.0.0.1:{gw.http_port}"
    ids = [await post(http, base, "+46701234567", "Hej"),
           await post(http, base, "+46701234568", LONG_GSM),
           await post(http, base, "+46701234569", LONG_UCS2)]
    for id in ids:
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "delivered", msg
        assert [e["status"] for e in msg["events"]] == ["queued", "sent", "delivered"]
    assert [(s.destination, s.text) for s in provider.submits] == [
        ("46701234567", "Hej"), ("46701234568", LONG_GSM),
        ("46701234569", LONG_UCS2)]  # long texts sent whole, once
    assert provider.dlr_count == 3 and set(provider.callback_answers) == {200}


async def test_mo_callback_is_stored_once(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    port = closed_port()
    gw = await gateway_factory(gateway_config(store_url, tmp_path, port, websms(provider)))
    url = f"http://127.0.0.1:{port}/hooks/prov/mo?token={TOKEN}"
    assert await provider.post_mo(url, "+46701234567", "4670000", "Svar: ja", "websms",
                                  key="n-1") == 200
    # the provider did not see our answer and sends it again: answered, not stored twice
    assert await provider.post_mo(url, "+46701234567", "4670000", "Svar: ja", "websms",
                                  key="n-1") == 200
    forged = url.replace(TOKEN, "guess")
    assert await provider.post_mo(forged, "+46701234567", "4670000", "forged", "websms") == 401
    rows = await wait_inbound(gw)
    assert [(r.sender, r.recipient, r.text, r.link) for r in rows] == [
        ("46701234567", "4670000", "Svar: ja", "prov")]


async def test_permanent_refusal_fails_with_the_providers_reason(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    provider.fail_every = 1
    port = closed_port()
    gw = await gateway_factory(gateway_config(store_url, tmp_path, port, websms(provider)))
    base = f"http://127.0.0.1:{gw.http_port}"
    msg = await wait_status(http, base, await post(http, base, "+46701234567", "no"), FINAL)
    assert msg["status"] == "failed"
    assert "HTTP 400" in msg["events"][-1]["reason"]
    assert "invalid destination address" in msg["events"][-1]["reason"]


async def test_throttling_errors_and_timeouts_lose_nothing(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """429 (Retry-After) pauses the link, 500 and a timeout are retried: all delivered."""
    provider.throttle_every, provider.retry_after, provider.error_every = 4, 0.2, 5
    gw = await gateway_factory(gateway_config(store_url, tmp_path, closed_port(),
                                              {**websms(provider), "batch": 1,
                                               "response_timeout": 0.5}))
    base = f"http://127.0.0.1:{gw.http_port}"
    provider.response_delay = 1.0  # the first requests time out ...
    ids = [await post(http, base, f"+4670123450{i}", f"storm {i}") for i in range(8)]
    await poll(lambda: "no answer" in (gw.links["prov"].describe()["last_error"] or ""))
    provider.response_delay = 0.0  # ... and are retried
    reasons = []
    for id in ids:
        msg = await wait_status(http, base, id, FINAL, timeout=20)
        assert msg["status"] == "delivered"
        reasons += [e["reason"] or "" for e in msg["events"]]
    assert any("no answer" in r for r in reasons)
    assert provider.throttled_count > 0 and provider.errored_count > 0
    assert {s.destination for s in provider.submits} == {f"4670123450{i}" for i in range(8)}


async def test_chained_gateways_relay_and_report_back(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """A -> (profile omnigate) -> B -> (websms) -> provider; the report travels back."""
    port_b, port_a = closed_port(), closed_port()
    (tmp_path / "b").mkdir()
    b = await gateway_factory(gateway_config(
        f"sqlite+aiosqlite:///{tmp_path}/b/b.db", tmp_path / "b", port_b, websms(provider)))
    a = await gateway_factory(gateway_config(store_url, tmp_path, port_a, {
        "name": "relay", "profile": "omnigate",
        "url": f"http://127.0.0.1:{b.http_port}/api/v1/messages"}))
    base_a, base_b = f"http://127.0.0.1:{a.http_port}", f"http://127.0.0.1:{b.http_port}"
    id = await post(http, base_a, "+46701234567", LONG_GSM)
    msg = await wait_status(http, base_a, id, FINAL)
    assert msg["status"] == "delivered", msg
    [remote] = {p["carrier_ref"].split("#")[0] for p in msg["part_refs"]}
    far = await wait_status(http, base_b, int(remote), FINAL)
    assert far["status"] == "delivered" and far["text"] == LONG_GSM
    assert [s.text for s in provider.submits] == [LONG_GSM]


async def test_hooks_answer_providers_while_the_api_wants_accounts(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    port = closed_port()
    alice = {"name": "alice", "api_key_hash": [hash_secret("key-alice")]}
    gw = await gateway_factory(gateway_config(store_url, tmp_path, port, websms(provider),
                                              accounts=[alice]))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.post(f"{base}/api/v1/messages", json={"to": "0701234567", "text": "x"}) as r:
        assert r.status == 401  # the API is locked...
    url = f"{base}/hooks/prov/mo?token={TOKEN}"  # ...the provider has no account, only the token
    assert await provider.post_mo(url, "+46701234567", "4670000", "in", "websms") == 200
    assert [r.text for r in await wait_inbound(gw)] == ["in"]


async def test_http_simulator_inside_the_daemon(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    port, sim_port = closed_port(), closed_port()
    gw = await gateway_factory(gateway_config(
        store_url, tmp_path, port,
        {"profile": "kannel", "url": f"http://127.0.0.1:{sim_port}/cgi-bin/sendsms",
         "username": "omnigate", "password": "pw"},
        simulators=[{"type": "http", "listen": f"127.0.0.1:{sim_port}", "system_id": "omnigate",
                     "password": "pw", "dlr": True}]))
    [sim] = gw.simulators
    assert isinstance(sim, HttpProviderSimulator)
    base = f"http://127.0.0.1:{gw.http_port}"
    msg = await wait_status(http, base, await post(http, base, "+46701234567", LONG_GSM), FINAL)
    assert msg["status"] == "delivered", msg
    assert len(sim.submits) == 3 and all(s.udh for s in sim.submits)  # part by part


@pytest.mark.parametrize(("extra", "reason"), [
    ({"dlr_url": "ftp://x", "dlr_mask": 3}, "dlr_url: must be an http:// or https:// URL"),
    ({"dlr_url": "http://x/%d"}, "dlr_mask: must be a whole number 1-31"),
    ({"dlr_url": "http://x/%d", "dlr_mask": 64}, "dlr_mask: must be a whole number 1-31"),
])
async def test_json_api_checks_status_callbacks(
        store_url: str, provider: HttpProviderSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession, extra: dict[str, Any], reason: str) -> None:
    gw = await gateway_factory(gateway_config(store_url, tmp_path, closed_port(),
                                              websms(provider)))
    async with http.post(f"http://127.0.0.1:{gw.http_port}/api/v1/messages",
                         json={"to": "0701234567", "text": "x", **extra}) as r:
        error = (await r.json())["error"]
        assert r.status == 400 and f"{error['field']}: {error['reason']}".startswith(reason)
