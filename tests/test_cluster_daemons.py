"""Two `omnigate run` processes on the real PostgreSQL, one killed with SIGKILL under load.

Every message a client got an id for must reach a simulator; duplicates are
counted and must stay within the documented window (what the dead node had in
its links' windows); the exclusive link must move to the survivor.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path

import aiohttp

from omnigate.sim.smpp import SmscSimulator
from tests.support import poll
from tests.test_daemon import start_daemon, wait_ready

WINDOW = 10  # per link; the documented duplicate window is the dead node's windows


def write_node_config(path: Path, pg_url: str, node: int, http_port: int, shared: int,
                      single: int) -> None:
    link = """
[[links]]
name = "{name}"
type = "smpp"
hosts = ["127.0.0.1:{port}"]
system_id = "omnigate"
password = "secret"
reconnect_min = 0.1
reconnect_max = 0.3
window = {window}
exclusive = {exclusive}
"""
    path.write_text(f"""
log_level = "info"
[node]
name = "node{node}"
id = {node}
[store]
url = "{pg_url}"
[http]
listen = "127.0.0.1:{http_port}"
[traffic_log]
path = "{path.parent / f'traffic{node}.log'}"
[cluster]
heartbeat = 0.2
lease = 1.0
[[routes]]
name = "single-bind"
match = {{ prefix = ["4673"] }}
tiers = [["single"]]
[[routes]]
tiers = [["shared"]]
""" + link.format(name="shared", port=shared, window=WINDOW, exclusive="false")
        + link.format(name="single", port=single, window=WINDOW, exclusive="true"))


async def _send(session: aiohttp.ClientSession, base: str, numbers: list[str],
                accepted: set[str]) -> None:
    try:
        async with session.get(f"{base}/send", params={"numbers": ",".join(numbers),
                                                       "text": "load"}) as resp:
            if resp.status == 200:
                accepted.update(line.split()[2].lstrip("+")
                                for line in (await resp.text()).splitlines())
    except (TimeoutError, aiohttp.ClientError):
        pass  # the node died under us: nothing was promised


async def _rebound(session: aiohttp.ClientSession, base: str, link: str) -> float:
    """Seconds from now until the node at `base` has `link` up."""
    started = time.monotonic()
    while True:
        async with session.get(f"{base}/api/v1/links") as resp:
            links = {x["name"]: x["state"] for x in (await resp.json())["links"]}
        if links[link] == "up":
            return time.monotonic() - started
        await asyncio.sleep(0.02)


async def test_kill_minus_nine_loses_nothing_and_the_exclusive_link_moves(
        pg_url: str, tmp_path: Path, unused_tcp_port_factory: object) -> None:
    ports = [unused_tcp_port_factory() for _ in range(2)]  # type: ignore[operator]
    shared = SmscSimulator(system_id="omnigate", password="secret")
    single = SmscSimulator(system_id="omnigate", password="secret")
    await shared.start()
    await single.start()
    plain_url = pg_url
    procs = []
    try:
        for node, port in ((1, ports[0]), (2, ports[1])):
            config = tmp_path / f"node{node}.toml"
            write_node_config(config, plain_url, node, port, shared.port, single.port)
            proc = start_daemon(config, tmp_path / f"node{node}.log")
            procs.append(proc)
            await wait_ready(f"http://127.0.0.1:{port}", proc)
        a, b = procs
        base_a, base_b = (f"http://127.0.0.1:{p}" for p in ports)
        await poll(lambda: single.bound == 1, timeout=5)
        async with aiohttp.ClientSession() as session:
            assert await _rebound(session, base_a, "single") < 1  # node1 started first: it owns it

        accepted: set[str] = set()
        numbers = (f"07{3 if i % 2 else 0}{i:07d}" for i in itertools.count())
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for batch in range(30):  # both nodes take load, then node1 dies mid-stream
                if batch == 15:
                    a.kill()
                    moved = asyncio.create_task(_rebound(session, base_b, "single"))
                await asyncio.gather(*(
                    _send(session, base, [next(numbers) for _ in range(10)], accepted)
                    for base in (base_a, base_b)))
            takeover = await asyncio.wait_for(moved, 10)
            got = Counter(s.destination for s in [*shared.submits, *single.submits])
            deadline = time.monotonic() + 30
            while not accepted <= set(got) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                got = Counter(s.destination for s in [*shared.submits, *single.submits])
        missing = accepted - set(got)
        duplicates = sum(n - 1 for n in got.values())
        print(f"accepted {len(accepted)}, submitted {sum(got.values())}, "
              f"duplicates {duplicates}, exclusive link back after {takeover:.2f}s")
        assert len(accepted) >= 300
        assert not missing, f"{len(missing)} accepted messages never reached an SMSC"
        assert duplicates <= 2 * WINDOW
        assert takeover < 5.0
        assert all(s.destination.startswith("4673") for s in single.submits)
        assert b.poll() is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        await shared.stop()
        await single.stop()
