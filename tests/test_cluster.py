"""Two nodes on one real PostgreSQL store, in one process: takeover, exclusive links, hand-off.

The kill -9 version of these, with two daemon processes, is in test_cluster_daemons.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.carriers.base import LinkState
from omnigate.config import Config
from omnigate.sim.smpp import SmscSimulator
from tests.support import FINAL, closed_port, make_config, poll, send_form, wait_status

BEAT, LEASE = 0.2, 1.0


def smpp_link(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "smpp", "hosts": [f"127.0.0.1:{port}"],
            "system_id": "omnigate", "password": "secret", "reconnect_min": 0.1,
            "reconnect_max": 0.3, **extra}


def node_config(pg_url: str, tmp_path: Path, node: int, links: list[dict[str, Any]],
                routes: list[dict[str, Any]] | None = None) -> Config:
    return make_config(pg_url, 0, tmp_path, links=links,
                       routes=routes or [{"tiers": [[links[0]["name"]]]}],
                       node={"name": f"node{node}", "id": node},
                       cluster={"heartbeat": BEAT, "lease": LEASE},
                       traffic_log={"path": None})


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_cluster_needs_postgresql(tmp_path: Path) -> None:
    from omnigate.config import ConfigError

    with pytest.raises(ConfigError, match="cluster: nodes share their queue through a PostgreSQL"):
        make_config(f"sqlite+aiosqlite:///{tmp_path}/o.db", 1, tmp_path, cluster={})


async def test_a_leaving_node_leaves_its_queue_to_the_other(
        pg_url: str, gateway_factory: Callable[..., Any], tmp_path: Path, smsc: SmscSimulator,
        http: aiohttp.ClientSession) -> None:
    # node1's carrier is unreachable: its messages stay queued until node1 leaves.
    a = await gateway_factory(node_config(pg_url, tmp_path, 1, [smpp_link("smsc1", closed_port())]))
    b = await gateway_factory(node_config(pg_url, tmp_path, 2, [smpp_link("smsc1", smsc.port)]))
    base_a, base_b = f"http://127.0.0.1:{a.http_port}", f"http://127.0.0.1:{b.http_port}"
    ids = await send_form(http, base_a, [f"07010000{i:02d}" for i in range(20)], "orphan")
    async with http.get(f"{base_b}/api/v1/cluster") as resp:
        view = await resp.json()
    assert view["clustered"] and {n["name"] for n in view["nodes"] if n["alive"]} == {
        "node1", "node2"}
    assert smsc.submit_count == 0
    await a.stop(grace=1.0)
    await smsc.wait_for(20, timeout=10)
    for id in ids:
        msg = await wait_status(http, base_b, id, FINAL)
        assert msg["status"] == "delivered"
        assert next(e for e in msg["events"] if e["status"] == "sent")["node"] == "node2"
    assert sorted(s.destination for s in smsc.submits) == [
        f"467010000{i:02d}" for i in range(20)]


async def test_exclusive_link_runs_on_one_node_and_moves_when_it_leaves(
        pg_url: str, gateway_factory: Callable[..., Any], tmp_path: Path, smsc: SmscSimulator,
        http: aiohttp.ClientSession) -> None:
    link = smpp_link("single", smsc.port, exclusive=True)
    a = await gateway_factory(node_config(pg_url, tmp_path, 1, [link]))
    b = await gateway_factory(node_config(pg_url, tmp_path, 2, [link]))
    await poll(lambda: a.links["single"].state is LinkState.UP)
    assert b.links["single"].state is LinkState.STOPPED
    await poll(lambda: smsc.bound == 1)

    # A message accepted by the standby node goes to the owner, which sends it.
    base_b = f"http://127.0.0.1:{b.http_port}"
    await poll(lambda: b.cluster is not None and b.cluster.owners == {"single": "node1"})
    [id] = await send_form(http, base_b, ["0702000001"], "via the owner")
    msg = await wait_status(http, base_b, id, FINAL)
    assert msg["status"] == "delivered"
    assert next(e for e in msg["events"] if e["status"] == "sent")["node"] == "node1"

    started = time.monotonic()
    await a.stop(grace=1.0)
    await poll(lambda: b.links["single"].state is LinkState.UP, timeout=5)
    assert time.monotonic() - started < 2 * BEAT + 1.0
    for _ in range(20):  # the owner writes what it runs with its next beat
        async with http.get(f"{base_b}/api/v1/cluster") as resp:
            view = await resp.json()
        if view["exclusive_owners"]:
            break
        await asyncio.sleep(BEAT / 2)
    assert view["exclusive_owners"] == {"single": "node2"}
    [id] = await send_form(http, base_b, ["0702000002"], "after the move")
    assert (await wait_status(http, base_b, id, FINAL))["status"] == "delivered"
    assert smsc.submit_count == 2


async def test_single_node_cluster_view(
        pg_url: str, gateway_factory: Callable[..., Any], tmp_path: Path, smsc: SmscSimulator,
        http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(pg_url, smsc.port, tmp_path))
    async with http.get(f"http://127.0.0.1:{gw.http_port}/api/v1/cluster") as resp:
        assert await resp.json() == {"node": "node1", "clustered": False, "nodes": []}


async def test_a_node_that_lost_its_lease_stops_sending_and_rereads_its_queue(
        pg_url: str, gateway_factory: Callable[..., Any], tmp_path: Path, smsc: SmscSimulator,
        http: aiohttp.ClientSession) -> None:
    a = await gateway_factory(node_config(pg_url, tmp_path, 1, [smpp_link("smsc1", smsc.port)]))
    b = await gateway_factory(node_config(pg_url, tmp_path, 2, [smpp_link("smsc1", smsc.port)]))
    await poll(lambda: a.links["smsc1"].state is LinkState.UP)
    a.suspend_link("smsc1", True)  # node1 holds its messages for now
    ids = await send_form(http, f"http://127.0.0.1:{a.http_port}",
                          [f"07030000{i:02d}" for i in range(10)], "fenced")
    # node1's heartbeats stop (a stalled process, a network partition) while it runs on.
    assert a.cluster is not None and a.cluster._task is not None
    a.cluster._task.cancel()
    await poll(lambda: not a.cluster.may_send(), timeout=LEASE * 2)  # type: ignore[union-attr]
    a.suspend_link("smsc1", False)  # its link is usable again, but its lease is gone
    await smsc.wait_for(10, timeout=10)  # node2 took the queue over and sent it
    base_b = f"http://127.0.0.1:{b.http_port}"
    for id in ids:
        msg = await wait_status(http, base_b, id, FINAL)
        assert next(e for e in msg["events"] if e["status"] == "sent")["node"] == "node2"
    # node1 comes back: it renews its lease, finds nothing of its own and sends nothing.
    a.cluster._task = asyncio.create_task(a.cluster._run())
    await poll(lambda: a.cluster is not None and a.cluster.may_send(), timeout=LEASE * 2)
    await asyncio.sleep(3 * BEAT)
    assert smsc.submit_count == 10
    assert a.dispatcher is not None and a.dispatcher.depth == 0
