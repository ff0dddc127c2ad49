"""Redundant nodes on one PostgreSQL store: heartbeats, queue takeover, exclusive links.

Every node sends the messages it accepted (its name is in their `node`
column), so the hot path never coordinates with other nodes. What the cluster
adds runs once per heartbeat on a connection of its own:

* **Heartbeat.** Each node stamps its row in `omnigate_nodes` with the
  database's clock (so node clocks may differ). A node whose stamp is older
  than `lease` is dead.
* **Takeover.** A live node claims a dead node's queued messages with
  `FOR UPDATE SKIP LOCKED` (two survivors never claim the same row), as many
  as fit in its memory per beat, and sends them like its own. Parts the dead
  node had already handed to a carrier are in `parts` and are not sent again.
* **Fencing.** A node sends only while its own lease holds: it stops handing
  out parts when its last renewal is older than `lease - heartbeat`, which is
  at least one beat before anybody may take its messages over. After such a
  lapse it reads its queue from the store again, keeping only what is still
  its own. So two live nodes never send one row; the documented window of
  duplicates is what a node had in a carrier's window when it died.
* **Exclusive links.** A link with `exclusive = true` (an operator account
  that allows one bind) runs on the node holding a PostgreSQL advisory lock
  for it. The lock belongs to the heartbeat connection: when a node dies, its
  connection closes, the lock is free, and the next beat of another node
  starts the link. If a node loses that connection it stops its exclusive
  links at once, since someone else may hold their locks a moment later.
* **Hand-off.** A node whose route has no usable link of its own, while a
  live node runs one of the route's exclusive links, moves the message to
  that node (`omnigate_handoffs`), which adopts it on its next beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from typing import Any

import asyncpg

from omnigate.carriers.base import Link, LinkState
from omnigate.config import ClusterConfig
from omnigate.dispatcher import Dispatcher
from omnigate.queue import Outbound

log = logging.getLogger("omnigate.cluster")

_LOCK_SPACE = 0x6F6D6E69  # 'omni': the first key of our advisory locks
_NOW = "extract(epoch from clock_timestamp())::float8"


class Cluster:
    def __init__(self, config: ClusterConfig, *, node: str, dsn: str, version: str,
                 dispatcher: Dispatcher, links: dict[str, Link], exclusive: list[str]) -> None:
        self.config = config
        self.node = node
        self.dsn = dsn
        self.version = version
        self.dispatcher = dispatcher
        self.links = links
        self.exclusive = exclusive
        self.owned: set[str] = set()  # exclusive links running here
        self.owners: dict[str, str] = {}  # exclusive link -> live node running it
        self._conn: asyncpg.Connection | None = None
        self._renewed = float("-inf")  # monotonic time our last successful beat was sent
        self._lapsed = False
        self._started_at = time.time()
        self._outbox: dict[str, list[int]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        dispatcher.may_send = self.may_send
        dispatcher.hand_off = self.hand_off

    # -- lifecycle ------------------------------------------------------------

    async def join(self) -> None:
        """Announce this node before its dispatcher reads its queue from the store.

        A survivor claims a dead node's rows holding a lock on its node row, and
        our heartbeat waits for that lock: so once this returns, no takeover of
        our rows is still under way, and what the dispatcher reads is ours.
        """
        await self._heartbeat()

    async def start(self) -> None:
        """The first full beat runs before we return, so owned links start at once."""
        await self._beat()
        self._task = asyncio.create_task(self._run(), name="cluster-heartbeat")
        log.info("node %s joined the cluster (heartbeat %.1f s, lease %.1f s)", self.node,
                 self.config.heartbeat, self.config.lease)

    async def stop(self) -> None:
        """Leave: our row says we are gone, so others take over what we leave queued."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._flushing:
            await asyncio.gather(self._flushing, return_exceptions=True)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(
                    "UPDATE omnigate_nodes SET heartbeat_at = 0 WHERE name = $1", self.node)
            await self._conn.close()
            self._conn = None

    def may_send(self) -> bool:
        lease = self.config.lease - self.config.heartbeat
        return time.monotonic() - self._renewed < lease

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat)
            try:
                await self._beat()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                log.error("cluster heartbeat failed (%s); exclusive links stopped, retrying",
                          exc)
                await self._lost_connection()
            except Exception:
                log.exception("cluster heartbeat failed")

    # -- one beat -------------------------------------------------------------

    async def _beat(self) -> None:
        await self._heartbeat()
        await self._lock_exclusive_links()
        await self._read_owners()
        if not self.dispatcher.queue.backlog:  # taken-over rows must fit in memory
            await self._take_over()
            await self._adopt_handoffs()

    async def _heartbeat(self) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn, timeout=self.config.lease / 2)
        sent_at = time.monotonic()
        await self._conn.execute(
            f"INSERT INTO omnigate_nodes (name, heartbeat_at, started_at, info) "
            f"VALUES ($1, {_NOW}, $2, $3) ON CONFLICT (name) DO UPDATE "
            f"SET heartbeat_at = {_NOW}, info = EXCLUDED.info",
            self.node, self._started_at, json.dumps(self._info()), timeout=self.config.lease / 2)
        lapsed = not self.may_send() and self._renewed != float("-inf")
        self._renewed = sent_at
        if lapsed:
            log.warning("node %s: our lease had lapsed; reading our queue again (others may "
                        "have taken some of it over)", self.node)
            await self.dispatcher.reload()

    def _info(self) -> dict[str, Any]:
        return {"version": self.version, "owned": sorted(self.owned),
                "links": {n: link.state.value for n, link in self.links.items()}}

    async def _lock_exclusive_links(self) -> None:
        assert self._conn is not None
        for name in self.exclusive:
            if name in self.owned:
                continue
            got = await self._conn.fetchval(
                "SELECT pg_try_advisory_lock($1, hashtext($2))", _LOCK_SPACE, name)
            if got:
                self.owned.add(name)
                log.warning("node %s now runs exclusive link %s", self.node, name)
                await self.links[name].start()

    async def _read_owners(self) -> None:
        assert self._conn is not None
        rows = await self._conn.fetch(
            f"SELECT name, info FROM omnigate_nodes WHERE name <> $1 "
            f"AND heartbeat_at >= {_NOW} - $2", self.node, self.config.lease)
        owners = {}
        for row in rows:
            info = json.loads(row["info"])
            for link in info.get("owned", ()):
                if info.get("links", {}).get(link) == LinkState.UP.value:
                    owners[link] = row["name"]
        self.owners = owners

    async def _take_over(self) -> None:
        assert self._conn is not None
        room = self.dispatcher.queue.room()
        if room <= 0:
            return
        rows = await self._conn.fetch(
            f"""WITH picked AS (
                  SELECT m.id, m.node FROM messages m JOIN omnigate_nodes n ON n.name = m.node
                  WHERE n.name <> $1 AND n.heartbeat_at < {_NOW} - $2
                    AND m.status IN ('queued', 'sending')
                  ORDER BY m.id LIMIT $3 FOR UPDATE OF m, n SKIP LOCKED)
                UPDATE messages SET node = $1 FROM picked WHERE messages.id = picked.id
                RETURNING messages.id, picked.node""",
            self.node, self.config.lease, room)
        if rows:
            dead = sorted({r["node"] for r in rows})
            adopted = await self.dispatcher.adopt([r["id"] for r in rows])
            log.warning("node %s took over %d queued messages of dead node(s) %s", self.node,
                        adopted, ", ".join(dead))

    async def _adopt_handoffs(self) -> None:
        assert self._conn is not None
        ids = [r["message_id"] for r in await self._conn.fetch(
            "DELETE FROM omnigate_handoffs WHERE message_id IN (SELECT message_id FROM "
            "omnigate_handoffs WHERE node = $1 LIMIT $2) RETURNING message_id", self.node,
            max(self.dispatcher.queue.room(), 1))]
        if ids:
            adopted = await self.dispatcher.adopt(ids)
            log.info("node %s adopted %d messages handed over by other nodes", self.node,
                     adopted)

    async def _lost_connection(self) -> None:
        for name in sorted(self.owned):
            log.warning("node %s stops exclusive link %s: its lock went with the connection",
                        self.node, name)
            self.links[name].terminate()
        self.owned.clear()
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    # -- hand-off -----------------------------------------------------------------

    def hand_off(self, msg: Outbound) -> bool:
        """Give a message to the live node running an exclusive link of its route."""
        if not self.owners:
            return False
        for tier in msg.route.tiers:
            for link in tier:
                owner = self.owners.get(link)
                if owner is not None:
                    self._outbox[owner].append(msg.id)
                    if self._flushing is None:
                        self._flushing = asyncio.create_task(self._flush_outbox())
                    return True
        return False

    async def _flush_outbox(self) -> None:
        await asyncio.sleep(0)  # collect what this pump pass hands off
        outbox, self._outbox = self._outbox, defaultdict(list)
        self._flushing = None
        for owner, ids in outbox.items():
            try:
                conn = await asyncpg.connect(self.dsn, timeout=self.config.lease / 2)
                try:
                    async with conn.transaction():
                        moved = await conn.fetch(
                            "UPDATE messages SET node = $1 WHERE id = ANY($2::bigint[]) "
                            "AND node = $3 RETURNING id", owner, ids, self.node)
                        await conn.executemany(
                            "INSERT INTO omnigate_handoffs (message_id, node) VALUES ($1, $2) "
                            "ON CONFLICT (message_id) DO UPDATE SET node = EXCLUDED.node",
                            [(r["id"], owner) for r in moved])
                finally:
                    await conn.close()
                log.info("handed %d messages to node %s (it runs their route's exclusive "
                         "link)", len(moved), owner)
                kept = set(ids) - {r["id"] for r in moved}
                if kept:  # no longer ours to move (or not queued): whatever is ours stays
                    await self.dispatcher.adopt(sorted(kept))
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.error("handing %d messages to node %s failed (%s); keeping them",
                          len(ids), owner, exc)
                await self.dispatcher.adopt(ids)

    # -- view ----------------------------------------------------------------------

    async def view(self) -> dict[str, Any]:
        """`GET /api/v1/cluster`: the nodes, their heartbeats and who runs which link."""
        conn = await asyncpg.connect(self.dsn, timeout=self.config.lease / 2)
        try:
            now = await conn.fetchval(f"SELECT {_NOW}")
            rows = await conn.fetch("SELECT name, heartbeat_at, started_at, info "
                                    "FROM omnigate_nodes ORDER BY name")
        finally:
            await conn.close()
        nodes = []
        for row in rows:
            info = json.loads(row["info"])
            age = now - row["heartbeat_at"]
            nodes.append({"name": row["name"], "alive": age <= self.config.lease,
                          "heartbeat_age": round(age, 2), "version": info.get("version"),
                          "started_at": row["started_at"], "exclusive_links": info.get("owned", []),
                          "links": info.get("links", {})})
        owners = {link: n["name"] for n in nodes if n["alive"] for link in n["exclusive_links"]}
        return {"node": self.node, "clustered": True, "lease": self.config.lease,
                "heartbeat": self.config.heartbeat, "nodes": nodes, "exclusive_owners": owners}
