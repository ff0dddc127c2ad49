"""Routing and cluster benchmark: one link versus two, one node versus two, failover gaps.

Daemons and simulators run as separate processes on loopback (see
bench/common.py for the shared helpers); wrk is the HTTP client.

* `tier`: end-to-end messages/s with one link, and with two links of one tier
  at weights 3:1 (each to its own simulator), with the shares measured there;
* `cluster`: end-to-end messages/s on PostgreSQL with one node, and with two
  nodes sharing the store (one wrk per node, the same total connections);
* `failover`: at a paced load, the longest time without any submit at the
  simulators after the primary SMSC is killed (SIGKILL) and traffic moves to
  the fallback tier; and the time until a killed node's exclusive link is up
  on the surviving node.

Writes bench/results/<date>-routing.json.
Usage: python bench/routing.py [--seconds 8] [--runs 3] [--quick] [--only tier|cluster|failover]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (  # a sibling module, not a package
    PG_URL,
    Processes,
    bench_dir,
    blast,
    daemon_toml,
    dated_name,
    free_port,
    medians,
    numbers,
    pg_reachable,
    report_head,
    sim_count,
    smpp_link_toml,
    wait_ready,
    write_report,
    wrk_blast,
)


def link(name: str, port: int, exclusive: bool = False) -> str:
    return smpp_link_toml(port, name=name, reconnect=True, exclusive=exclusive)


def config(path: Path, *, store: str, http_port: int, links: str, routes: str,
           node: int = 1, cluster: bool = False) -> Path:
    cluster_toml = "[cluster]\nheartbeat = 0.5\nlease = 3.0\n" if cluster else ""
    path.write_text(daemon_toml(store, http_port, traffic_log=f"traffic{node}.log")
                    + f'[node]\nname = "node{node}"\nid = {node}\n[queue]\nmemory_limit = 50000\n'
                    + f"{cluster_toml}{routes}\n{links}")
    return path


def node_daemon(procs: Processes, work: Path, node: int, links: str, routes: str
                ) -> tuple[str, subprocess.Popen[bytes]]:
    """Cluster node `node` on the PostgreSQL store: (its HTTP base, its process)."""
    port = free_port()
    proc = procs.daemon(config(work / f"n{node}.toml", store=PG_URL, http_port=port, links=links,
                               routes=routes, node=node, cluster=True))
    return f"http://127.0.0.1:{port}", proc


class Sims:
    """SMPP simulator processes, each with its control port."""

    def __init__(self, procs: Processes, count: int) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.controls = [free_port() for _ in range(count)]
        self.procs = [procs.sim(p, c, dlr=False) for p, c in zip(self.ports, self.controls,
                                                                   strict=True)]
        self.last = [0] * count

    async def counts(self, session: aiohttp.ClientSession) -> list[int]:
        """Submits per simulator; a killed one keeps its last count."""
        for i, control in enumerate(self.controls):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                self.last[i] = await sim_count(session, control)
        return list(self.last)


async def _reset_pg() -> None:
    from tests.support import reset_pg

    await reset_pg(PG_URL)


async def _load(bases: list[str], args: argparse.Namespace, work: Path
                ) -> tuple[float, float, int, int]:
    """wrk against every base at once, the connections split between them."""
    conns = max(1, args.concurrency // len(bases))
    runs = await asyncio.gather(*(
        asyncio.to_thread(wrk_blast, base, args.seconds, conns, 10000, work / f"w{i}")
        for i, base in enumerate(bases)))
    start = min(r[0] for r in runs)
    end = max(r[1] for r in runs)
    return start, end, sum(r[2] for r in runs), sum(r[3] for r in runs)


async def _measure(sims: Sims, bases: list[str], args: argparse.Namespace,
                        work: Path) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        for base in bases:
            await wait_ready(session, base, link_up=True)
        warm = numbers(300, 300)
        for base in bases:
            await blast(session, base, warm, 20)
        total_before = sum(await sims.counts(session))
        while sum(await sims.counts(session)) < total_before:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        before = await sims.counts(session)
        for i in range(len(bases)):
            (work / f"w{i}").mkdir(exist_ok=True)
        start, http_end, sent, bad = await _load(bases, args, work)
        accepted = sent - bad
        target = sum(before) + accepted
        deadline = time.monotonic() + 300
        while sum(await sims.counts(session)) < target and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        end = time.monotonic()
        after = await sims.counts(session)
    got = [a - b for a, b in zip(after, before, strict=True)]
    return {"accepted": accepted, "http_accepted_per_s": round(accepted / (http_end - start)),
            "end_to_end_per_s": round(sum(got) / (end - start)), "per_smsc": got}


async def tier(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, names, weights in (("one_link", ["a"], ""),
                                  ("two_links_3_to_1", ["a", "b"], "weights = { a = 3, b = 1 }")):
        runs = []
        for _ in range(args.runs):
            with bench_dir("omnigate-bench-tier-", logs=("daemon.log",)) as (work, procs):
                sims = Sims(procs, len(names))
                port = free_port()
                routes = f"[[routes]]\ntiers = [{json.dumps(names)}]\n{weights}"
                links = "".join(link(n, p) for n, p in zip(names, sims.ports, strict=True))
                procs.daemon(config(work / "o.toml", store=f"sqlite+aiosqlite:///{work}/o.db",
                                    http_port=port, links=links, routes=routes))
                runs.append(await _measure(sims, [f"http://127.0.0.1:{port}"], args, work))
        out[label] = _median(runs)
        print(f"tier {label}: {json.dumps(out[label])}", flush=True)
    return out


async def cluster(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, nodes in (("one_node", 1), ("two_nodes", 2)):
        runs = []
        for _ in range(args.runs):
            await _reset_pg()
            with bench_dir("omnigate-bench-cluster-", logs=("daemon.log",)) as (work, procs):
                sims = Sims(procs, 1)
                bases = [node_daemon(procs, work, node, link("a", sims.ports[0]),
                                     '[[routes]]\ntiers = [["a"]]')[0]
                         for node in range(1, nodes + 1)]
                runs.append(await _measure(sims, bases, args, work))
        out[label] = _median(runs)
        print(f"cluster {label}: {json.dumps(out[label])}", flush=True)
    return out


async def _longest_gap(session: aiohttp.ClientSession, sims: Sims, seconds: float) -> float:
    """Longest stretch without a new submit at any simulator, sampled every 10 ms."""
    last_total, last_change, longest = -1, time.monotonic(), 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        total = sum(await sims.counts(session))
        now = time.monotonic()
        if total != last_total:
            longest = max(longest, now - last_change)
            last_total, last_change = total, now
        await asyncio.sleep(0.01)
    return longest


async def failover_gap(args: argparse.Namespace) -> dict[str, Any]:
    gaps = []
    for _ in range(args.runs):
        with bench_dir("omnigate-bench-failover-", logs=("daemon.log",)) as (work, procs):
            sims = Sims(procs, 2)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            procs.daemon(config(
                work / "o.toml", store=f"sqlite+aiosqlite:///{work}/o.db", http_port=port,
                links=link("primary", sims.ports[0]) + link("fallback", sims.ports[1]),
                routes='[[routes]]\ntiers = [["primary"], ["fallback"]]'))
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, base, link_up=True)
                await asyncio.sleep(1.0)  # both links bound
                load = asyncio.create_task(blast(session, base, numbers(2000, 2000), 10,
                                                 rate=args.rate))
                await asyncio.sleep(1.0)
                quiet_before = await _longest_gap(session, sims, 0.5)
                sims.procs[0].send_signal(signal.SIGKILL)
                gap = await _longest_gap(session, sims, 2.0)
                await load
            gaps.append({"gap_ms": round(gap * 1000, 1),
                         "steady_gap_ms": round(quiet_before * 1000, 1)})
    return _median(gaps) | {"rate": args.rate}


async def exclusive_takeover(args: argparse.Namespace) -> dict[str, Any]:
    times = []
    for _ in range(args.runs):
        await _reset_pg()
        with bench_dir("omnigate-bench-takeover-", logs=("daemon.log",)) as (work, procs):
            sims = Sims(procs, 1)
            bases, daemons = [], []
            for node in (1, 2):
                base, daemon = node_daemon(procs, work, node,
                                           link("single", sims.ports[0], exclusive=True),
                                           '[[routes]]\ntiers = [["single"]]')
                bases.append(base)
                daemons.append(daemon)
                async with aiohttp.ClientSession() as session:
                    await wait_ready(session, base, link_up=node == 1)
            async with aiohttp.ClientSession() as session:
                daemons[0].send_signal(signal.SIGKILL)
                killed = time.monotonic()
                await wait_ready(session, bases[1], link_up=True)
                times.append({"exclusive_link_moved_s": round(time.monotonic() - killed, 3)})
    return _median(times) | {"heartbeat_s": 0.5, "lease_s": 3.0}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {**medians(runs), "runs": runs}


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=8, help="wrk duration per run")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rate", type=float, default=500.0, help="paced load in the failover runs")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=["tier", "cluster", "failover"])
    args = p.parse_args()
    if args.quick:
        args.seconds, args.runs = 3, 1
    if not shutil.which("wrk"):
        sys.exit("bench/routing.py needs wrk (make bench installs it)")
    report: dict[str, Any] = report_head(args)
    if args.only in (None, "tier"):
        report["tier"] = await tier(args)
    if args.only in (None, "cluster") and pg_reachable():
        report["cluster"] = await cluster(args)
    if args.only in (None, "failover"):
        report["failover"] = await failover_gap(args)
        print(f"failover: {json.dumps(report['failover'])}", flush=True)
        if pg_reachable():
            report["exclusive_takeover"] = await exclusive_takeover(args)
            print(f"exclusive takeover: {json.dumps(report['exclusive_takeover'])}", flush=True)
    write_report(dated_name(report["date"], "routing", args.only), report)


if __name__ == "__main__":
    asyncio.run(main())
